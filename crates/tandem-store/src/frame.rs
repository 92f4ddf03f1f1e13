//! Query results as polars DataFrames.

use polars::prelude::{Column, DataFrame};

use crate::error::{Result, StoreError};
use crate::value::Value;

/// The column type chosen for a result column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Real,
    Text,
}

/// Builds a DataFrame from generic rows (as [`crate::Store::query_rows`] returns them).
///
/// SQLite types values, not columns, so each column's type is chosen from the values it holds: only
/// integers gives `i64`, integers and floats `f64`, anything else (text, blobs as hex digits, a mix)
/// `str`. NULLs stay nulls. A column with no values at all is `str`. Repeated column names get a
/// suffix (`a`, `a_2`), as a DataFrame's names must be unique.
pub fn to_frame(columns: &[String], rows: &[Vec<Value>]) -> Result<DataFrame> {
    build(columns, None, rows)
}

/// As [`to_frame`], with the types the tables declare, used for columns without values.
pub(crate) fn build(columns: &[String], declared: Option<&[String]>, rows: &[Vec<Value>]) -> Result<DataFrame> {
    let names = unique_names(columns);
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let cells = || rows.iter().map(move |r| r.get(i).unwrap_or(&Value::Null));
        let kind = kind_of(cells(), declared.and_then(|d| d.get(i)).map(|s| s.as_str()));
        let column = match kind {
            Kind::Int => Column::new(name.as_str().into(), cells().map(|v| v.as_i64()).collect::<Vec<Option<i64>>>()),
            Kind::Real => Column::new(name.as_str().into(), cells().map(|v| v.as_f64()).collect::<Vec<Option<f64>>>()),
            Kind::Text => Column::new(
                name.as_str().into(),
                cells().map(|v| if v.is_null() { None } else { Some(v.to_string()) }).collect::<Vec<Option<String>>>(),
            ),
        };
        out.push(column);
    }
    DataFrame::new_with_height(rows.len(), out).map_err(|e| StoreError::Frame { message: e.to_string() })
}

fn kind_of<'a>(cells: impl Iterator<Item = &'a Value>, declared: Option<&str>) -> Kind {
    let (mut ints, mut reals, mut others) = (0usize, 0usize, 0usize);
    for v in cells {
        match v {
            Value::Null => {}
            Value::Int(_) => ints += 1,
            Value::Real(_) => reals += 1,
            Value::Text(_) | Value::Blob(_) => others += 1,
        }
    }
    match (ints, reals, others) {
        (0, 0, 0) => match declared.map(|d| d.to_ascii_uppercase()) {
            Some(d) if d.contains("INT") || d == "BOOLEAN" => Kind::Int,
            Some(d) if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") || d == "NUMERIC" => Kind::Real,
            _ => Kind::Text,
        },
        (_, 0, 0) => Kind::Int,
        (_, _, 0) => Kind::Real,
        _ => Kind::Text,
    }
}

/// Column names made unique (`id`, `id_2`, ...), as a DataFrame and a JSON object need them.
pub fn unique_names(columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(columns.len());
    for c in columns {
        let mut name = c.clone();
        let mut n = 2;
        while out.contains(&name) {
            name = format!("{c}_{n}");
            n += 1;
        }
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::DataType;

    #[test]
    fn column_types_follow_the_values() {
        let cols = vec!["i".to_string(), "r".into(), "t".into(), "n".into(), "i".into()];
        let rows = vec![
            vec![Value::Int(1), Value::Int(2), Value::Text("a".into()), Value::Null, Value::Blob(vec![0xab])],
            vec![Value::Null, Value::Real(2.5), Value::Int(3), Value::Null, Value::Int(4)],
        ];
        let df = to_frame(&cols, &rows).unwrap();
        assert_eq!(df.shape(), (2, 5));
        let dtypes: Vec<DataType> = df.dtypes();
        assert_eq!(dtypes, [DataType::Int64, DataType::Float64, DataType::String, DataType::String, DataType::String]);
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["i", "r", "t", "n", "i_2"]);
        assert_eq!(df.column("i_2").unwrap().str().unwrap().get(0), Some("ab"));
        assert_eq!(df.column("i").unwrap().i64().unwrap().get(1), None);
    }

    #[test]
    fn empty_columns_take_the_declared_type() {
        let cols = vec!["a".to_string(), "b".into(), "c".into()];
        let declared = vec!["INTEGER".to_string(), "REAL".into(), "NULL".into()];
        let df = build(&cols, Some(&declared), &[]).unwrap();
        assert_eq!(df.dtypes(), [DataType::Int64, DataType::Float64, DataType::String]);
        assert_eq!(df.height(), 0);
    }
}
