//! Generic query results: SQLite's five storage classes as one small enum.

use std::fmt;

use serde::{Serialize, Serializer};
use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Row, TypeInfo, ValueRef};

/// One cell of a query result, typed by what SQLite stored (SQLite types values, not columns).
///
/// In JSON, `Null` is `null`, `Int` and `Real` are numbers, `Text` a string and `Blob` a string of
/// hex digits.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// Reads cell `i` of a row, whatever its storage class.
    pub(crate) fn read(row: &SqliteRow, i: usize) -> Result<Value, sqlx::Error> {
        let raw: SqliteValueRef<'_> = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        let class = raw.type_info().name().to_string();
        Ok(match class.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked::<i64, _>(i)?),
            "REAL" | "NUMERIC" => Value::Real(row.try_get_unchecked::<f64, _>(i)?),
            "BLOB" => Value::Blob(row.try_get_unchecked::<Vec<u8>, _>(i)?),
            _ => Value::Text(row.try_get_unchecked::<String, _>(i)?),
        })
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The number, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Real(v) => Some(*v),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(v) => Some(v),
            _ => None,
        }
    }
}

/// Text as a CSV cell or a table shows it: empty for NULL, hex digits for a blob.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Int(v) => write!(f, "{v}"),
            Value::Real(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
            Value::Blob(v) => f.write_str(&hex::encode(v)),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::Real(v) => s.serialize_f64(*v),
            Value::Text(v) => s.serialize_str(v),
            Value::Blob(v) => s.serialize_str(&hex::encode(v)),
        }
    }
}
