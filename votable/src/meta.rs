//! Arrow field-metadata keys that carry VOTable FIELD attributes (writer input, reader output).

/// FIELD `unit`.
pub const UNIT: &str = "unit";
/// FIELD `ucd`.
pub const UCD: &str = "ucd";
/// FIELD `utype`.
pub const UTYPE: &str = "utype";
/// FIELD `xtype`.
pub const XTYPE: &str = "xtype";
/// FIELD `<DESCRIPTION>` text.
pub const DESCRIPTION: &str = "description";
/// FIELD `arraysize` (writer: override honoured when it fits the Arrow type).
pub const ARRAYSIZE: &str = "arraysize";
/// FIELD `datatype` (writer: override honoured when compatible, e.g. `unicodeChar` for strings).
pub const DATATYPE: &str = "datatype";
/// FIELD `ID` (writer: used when it is a valid, unused XML ID).
pub const ID: &str = "ID";
