//! tandem-plan's tests, one binary: the search against exhaustive enumeration on random problems,
//! timelines of hand-built plans, and plans for the zoo's real models.

mod search;
mod timeline;
mod zoo;
