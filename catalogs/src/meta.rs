//! Catalog metadata files: what a data centre writes to describe a catalog (DaCHS-style
//! resource descriptor, in TOML). The same file, minus `[source]`, is stored next to the
//! HATS catalog as `vostok.toml` and feeds TAP_SCHEMA, VOSI and every VOTable FIELD.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Name of the per-catalog metadata file stored in the catalog root.
pub const METADATA_FILE: &str = "vostok.toml";

/// A catalog's description: table identity, source (for ingest) and columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogMeta {
    /// Table-level metadata.
    pub table: TableMeta,
    /// Where the raw data comes from (only used by ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceMeta>,
    /// Column descriptions, in output order.
    #[serde(default)]
    pub columns: Vec<ColumnMeta>,
}

/// Table-level metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableMeta {
    /// TAP schema name, e.g. `hipparcos`.
    pub schema: String,
    /// Table name within the schema, e.g. `hip2`.
    pub name: String,
    /// Short title.
    #[serde(default)]
    pub title: Option<String>,
    /// Free-text description.
    #[serde(default)]
    pub description: Option<String>,
    /// Column holding right ascension (degrees, ICRS).
    pub ra: String,
    /// Column holding declination (degrees, ICRS).
    pub dec: String,
    /// Column that identifies a row (used as SCS `ID_MAIN`).
    #[serde(default)]
    pub id: Option<String>,
    /// How to cite the data.
    #[serde(default)]
    pub citation: Option<String>,
    /// Licence of the data.
    #[serde(default)]
    pub licence: Option<String>,
    /// Description of the schema (TAP_SCHEMA.schemas.description).
    #[serde(default)]
    pub schema_description: Option<String>,
    /// Maximum rows per HATS partition file.
    #[serde(default)]
    pub partition_rows: Option<usize>,
    /// Rows per Parquet row group (small enough to prune well).
    #[serde(default)]
    pub row_group_rows: Option<usize>,
}

impl TableMeta {
    /// A table with its identity and position columns; everything else unset.
    pub fn new(schema: &str, name: &str, ra: &str, dec: &str) -> Self {
        TableMeta {
            schema: schema.into(),
            name: name.into(),
            title: None,
            description: None,
            ra: ra.into(),
            dec: dec.into(),
            id: None,
            citation: None,
            licence: None,
            schema_description: None,
            partition_rows: None,
            row_group_rows: None,
        }
    }
}

/// Input format of the raw source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Comma- (or `delimiter`-) separated text with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// VOTable (TABLEDATA, BINARY or BINARY2).
    Votable,
    /// FITS binary table (first BINTABLE extension, or `hdu`).
    Fits,
    /// Fixed-width text, columns given by CDS-style byte ranges (`bytes = "16-28"`).
    Fixed,
    /// Fixed-size binary records after a header, columns in record order.
    Binary,
}

/// The raw source of a catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceMeta {
    /// File path (relative to the metadata file) or object-store URL; `.gz` is decompressed.
    pub path: String,
    /// Input format.
    pub format: SourceFormat,
    /// CSV delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Binary: bytes to skip before the first record.
    #[serde(default)]
    pub header_bytes: Option<usize>,
    /// Binary: `little` (default) or `big`.
    #[serde(default)]
    pub byte_order: Option<String>,
    /// FITS: HDU index of the binary table (default: first BINTABLE).
    #[serde(default)]
    pub hdu: Option<usize>,
    /// Expected number of rows (checked after reading when set).
    #[serde(default)]
    pub rows: Option<usize>,
}

/// One column of a catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Column name as published (an ADQL regular identifier, lower case is best).
    pub name: String,
    /// Name in the source, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Data type: int16, int32, int64, float32, float64, boolean, string.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub datatype: Option<String>,
    /// Fixed-width sources: CDS byte range, 1-based and inclusive, e.g. `"16-28"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    /// Unit of the source values when they must be converted to `unit` (`rad`, `mas`, `arcsec`, `arcmin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_unit: Option<String>,
    /// VOUnit of the published values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// UCD1+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucd: Option<String>,
    /// utype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utype: Option<String>,
    /// DALI xtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xtype: Option<String>,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the column is indexed (TAP_SCHEMA.columns.indexed).
    #[serde(default)]
    pub indexed: bool,
    /// Whether TAP_SCHEMA marks it principal (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<bool>,
    /// Value standing for null in the source (e.g. `0` or `-99.9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null: Option<String>,
    /// VOTable datatype of a string column: `unicodeChar` when its text is not all ASCII
    /// (ingest sets it from the content), `char` otherwise (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votable_datatype: Option<String>,
}

impl CatalogMeta {
    /// Parses a metadata file.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let meta: CatalogMeta =
            toml::from_str(text).map_err(|e| Error::Metadata(format!("{e}")))?;
        meta.check()?;
        Ok(meta)
    }

    /// Serialises to TOML (for the copy stored with the catalog).
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string_pretty(self).map_err(|e| Error::Metadata(format!("{e}")))
    }

    /// `schema.table`, the fully qualified name.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.table.schema, self.table.name)
    }

    /// Checks names and types.
    pub fn check(&self) -> Result<(), Error> {
        for ident in [&self.table.schema, &self.table.name] {
            if !is_regular_identifier(ident) {
                return Err(Error::Metadata(format!(
                    "'{ident}' is not a valid schema or table name (letters, digits, _; starting with a letter)"
                )));
            }
        }
        let mut seen = HashMap::new();
        for c in &self.columns {
            if !is_regular_identifier(&c.name) {
                return Err(Error::Metadata(format!(
                    "column name '{}' is not an ADQL regular identifier",
                    c.name
                )));
            }
            if seen.insert(c.name.to_ascii_lowercase(), ()).is_some() {
                return Err(Error::Metadata(format!(
                    "column '{}' appears twice",
                    c.name
                )));
            }
            if let Some(t) = &c.datatype {
                parse_type(t)?;
            }
            if let Some(v) = c.votable_datatype.as_deref() {
                if !matches!(v, "char" | "unicodeChar") {
                    return Err(Error::Metadata(format!(
                        "column '{}': votable_datatype must be \"char\" or \"unicodeChar\", \
                         not \"{v}\"",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Metadata of one column by (case-insensitive) name.
    pub fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl ColumnMeta {
    /// The Arrow field metadata map (unit, ucd, utype, xtype, description).
    pub fn field_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                m.insert(k.to_string(), v.clone());
            }
        };
        put("unit", &self.unit);
        put("ucd", &self.ucd);
        put("utype", &self.utype);
        put("xtype", &self.xtype);
        put("description", &self.description);
        put(votable::meta::DATATYPE, &self.votable_datatype);
        m
    }

    /// Attaches this column's metadata to an Arrow field.
    pub fn decorate(&self, field: &Field) -> Field {
        field.clone().with_metadata(self.field_metadata())
    }
}

/// True for an ADQL regular identifier: a letter followed by letters, digits or `_`.
pub fn is_regular_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a metadata type name into an Arrow type.
pub fn parse_type(t: &str) -> Result<DataType, Error> {
    Ok(match t.to_ascii_lowercase().as_str() {
        "int16" | "short" | "smallint" => DataType::Int16,
        "int32" | "int" | "integer" => DataType::Int32,
        "int64" | "long" | "bigint" => DataType::Int64,
        "float32" | "float" | "real" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "boolean" | "bool" => DataType::Boolean,
        "string" | "char" | "text" | "varchar" => DataType::Utf8,
        other => return Err(Error::Metadata(format!("unknown column type '{other}'"))),
    })
}

/// Factor converting `from` units into degrees, for positions and their errors.
pub fn to_degrees_factor(from: &str) -> Result<f64, Error> {
    Ok(match from {
        "rad" => 180.0 / std::f64::consts::PI,
        "deg" => 1.0,
        "arcmin" => 1.0 / 60.0,
        "arcsec" => 1.0 / 3600.0,
        "mas" => 1.0 / 3_600_000.0,
        other => {
            return Err(Error::Metadata(format!(
                "cannot convert source unit '{other}' (rad, deg, arcmin, arcsec, mas are known)"
            )))
        }
    })
}
