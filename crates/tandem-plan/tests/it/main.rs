//! tandem-plan's tests, one binary: the search against exhaustive enumeration on random problems,
//! the robust (p90 over availability scenarios) search likewise, timelines of hand-built plans, and
//! plans for the zoo's real models.

mod robust;
mod search;
mod timeline;
mod zoo;
