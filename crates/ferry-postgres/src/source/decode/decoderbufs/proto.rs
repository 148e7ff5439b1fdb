//! The protobuf messages of decoderbufs (`proto/pg_logicaldec.proto`, package
//! `decoderbufs`, proto2), written out for prost so that no protoc or build script is
//! needed. Field numbers and types are the wire contract; names follow the `.proto`.
//!
//! `op` is read as a plain `int32` (the enum's wire form), so an unknown value is an error
//! the decoder reports rather than one prost hides. prost does not enforce proto2
//! `required`; the decoder checks what it needs.

/// `Op` of the `.proto`.
pub(super) mod op {
    pub const INSERT: i32 = 0;
    pub const UPDATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const BEGIN: i32 = 3;
    pub const COMMIT: i32 = 4;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Point {
    #[prost(double, required, tag = "1")]
    pub x: f64,
    #[prost(double, required, tag = "2")]
    pub y: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DatumMessage {
    /// The column name as `quote_identifier` prints it.
    #[prost(string, optional, tag = "1")]
    pub column_name: Option<String>,
    /// The column's type oid.
    #[prost(int64, optional, tag = "2")]
    pub column_type: Option<i64>,
    /// Unset for SQL NULL.
    #[prost(oneof = "Datum", tags = "3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub datum: Option<Datum>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Datum {
    #[prost(int32, tag = "3")]
    Int32(i32),
    #[prost(int64, tag = "4")]
    Int64(i64),
    #[prost(float, tag = "5")]
    Float(f32),
    #[prost(double, tag = "6")]
    Double(f64),
    #[prost(bool, tag = "7")]
    Bool(bool),
    #[prost(string, tag = "8")]
    String(String),
    #[prost(bytes, tag = "9")]
    Bytes(Vec<u8>),
    #[prost(message, tag = "10")]
    Point(Point),
    /// An unchanged TOAST value (stored out of line and not part of the change).
    #[prost(bool, tag = "11")]
    Missing(bool),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeInfo {
    /// `format_type` of the column: `character varying(20)`.
    #[prost(string, required, tag = "1")]
    pub modifier: String,
    #[prost(bool, required, tag = "2")]
    pub value_optional: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RowMessage {
    #[prost(uint32, optional, tag = "1")]
    pub transaction_id: Option<u32>,
    /// Microseconds since 1970-01-01 UTC.
    #[prost(uint64, optional, tag = "2")]
    pub commit_time: Option<u64>,
    /// `schema.table`, each part as `quote_identifier` prints it.
    #[prost(string, optional, tag = "3")]
    pub table: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub op: Option<i32>,
    #[prost(message, repeated, tag = "5")]
    pub new_tuple: Vec<DatumMessage>,
    #[prost(message, repeated, tag = "6")]
    pub old_tuple: Vec<DatumMessage>,
    #[prost(message, repeated, tag = "7")]
    pub new_typeinfo: Vec<TypeInfo>,
}
