//! Table and column metadata as TAP publishes it: the `TAP_SCHEMA` tables (queryable by ADQL,
//! registered as in-memory tables) and the same facts for VOSI `/tables`. One model feeds both,
//! so they cannot disagree.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use catalogs::HatsTable;

/// A column as TAP describes it.
#[derive(Debug, Clone)]
pub struct ColumnDesc {
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub ucd: Option<String>,
    pub utype: Option<String>,
    pub xtype: Option<String>,
    /// VOTable datatype.
    pub datatype: String,
    pub arraysize: Option<String>,
    pub principal: bool,
    pub indexed: bool,
    pub std: bool,
}

/// A foreign key from one table to another.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub key_id: String,
    pub target_table: String,
    /// (from column, target column) pairs.
    pub columns: Vec<(String, String)>,
}

/// A table as TAP describes it.
#[derive(Debug, Clone)]
pub struct TableDesc {
    /// Qualified name, `schema.table`.
    pub name: String,
    pub description: Option<String>,
    pub table_type: &'static str,
    pub rows: Option<u64>,
    pub columns: Vec<ColumnDesc>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// A schema as TAP describes it.
#[derive(Debug, Clone)]
pub struct SchemaDesc {
    pub name: String,
    pub description: Option<String>,
    pub tables: Vec<TableDesc>,
}

/// Everything TAP_SCHEMA and VOSI tables publish.
#[derive(Debug, Clone)]
pub struct TapMetadata {
    pub schemas: Vec<SchemaDesc>,
}

/// The VOTable datatype and arraysize for an Arrow type.
pub fn votable_type(t: &DataType) -> (&'static str, Option<&'static str>) {
    match t {
        DataType::Boolean => ("boolean", None),
        DataType::UInt8 => ("unsignedByte", None),
        DataType::Int8 | DataType::Int16 => ("short", None),
        DataType::Int32 | DataType::UInt16 => ("int", None),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ("long", None),
        DataType::Float16 | DataType::Float32 => ("float", None),
        DataType::Float64 => ("double", None),
        DataType::List(f) | DataType::LargeList(f) => (votable_type(f.data_type()).0, Some("*")),
        _ => ("char", Some("*")),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn col(name: &str, datatype: &'static str, description: &str) -> ColumnDesc {
    ColumnDesc {
        name: name.into(),
        description: s(description),
        unit: None,
        ucd: None,
        utype: None,
        xtype: None,
        datatype: datatype.into(),
        arraysize: if datatype == "char" { s("*") } else { None },
        principal: true,
        indexed: false,
        std: true,
    }
}

impl TapMetadata {
    /// Describes the served catalogs and TAP_SCHEMA itself.
    pub fn build(tables: &[(String, Arc<HatsTable>)]) -> Self {
        let mut schemas: Vec<SchemaDesc> = Vec::new();
        for (name, t) in tables {
            let cat = t.catalog();
            let m = &cat.meta;
            let columns = cat
                .schema
                .fields()
                .iter()
                .map(|f| {
                    let cm = m.column(f.name());
                    let md = f.metadata();
                    let (mut datatype, arraysize) = votable_type(f.data_type());
                    // A string column its metadata declares unicodeChar is written so.
                    if datatype == "char"
                        && md.get(votable::meta::DATATYPE).map(String::as_str)
                            == Some("unicodeChar")
                    {
                        datatype = "unicodeChar";
                    }
                    ColumnDesc {
                        name: f.name().clone(),
                        description: md.get("description").cloned(),
                        unit: md.get("unit").cloned(),
                        ucd: md.get("ucd").cloned(),
                        utype: md.get("utype").cloned(),
                        xtype: md.get("xtype").cloned(),
                        datatype: datatype.into(),
                        arraysize: arraysize.map(str::to_string),
                        principal: cm.and_then(|c| c.principal).unwrap_or(true),
                        indexed: cm.map(|c| c.indexed).unwrap_or(false),
                        std: false,
                    }
                })
                .collect();
            let desc = TableDesc {
                name: name.clone(),
                description: m
                    .table
                    .description
                    .clone()
                    .or_else(|| m.table.title.clone()),
                table_type: "table",
                rows: cat.rows,
                columns,
                foreign_keys: vec![],
            };
            let schema_name = m.table.schema.to_ascii_lowercase();
            match schemas.iter_mut().find(|s| s.name == schema_name) {
                Some(s) => s.tables.push(desc),
                None => schemas.push(SchemaDesc {
                    name: schema_name,
                    description: m.table.schema_description.clone(),
                    tables: vec![desc],
                }),
            }
        }
        let mut tap_schema = tap_schema_desc();
        mark_non_ascii(&mut tap_schema, &schemas);
        schemas.push(tap_schema);
        TapMetadata { schemas }
    }

    /// All tables, in TAP_SCHEMA order.
    pub fn tables(&self) -> impl Iterator<Item = (&SchemaDesc, &TableDesc)> {
        self.schemas
            .iter()
            .flat_map(|s| s.tables.iter().map(move |t| (s, t)))
    }

    /// Registers the five TAP_SCHEMA tables with the context.
    pub fn register(&self, ctx: &SessionContext) -> datafusion::error::Result<()> {
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| datafusion::error::DataFusionError::Plan("no default catalog".into()))?;
        catalog.register_schema("tap_schema", Arc::new(MemorySchemaProvider::new()))?;
        let str_col = |v: Vec<Option<String>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let int_col = |v: Vec<i32>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let register = |name: &str,
                        desc: &TableDesc,
                        arrays: Vec<ArrayRef>|
         -> datafusion::error::Result<()> {
            let fields: Vec<Field> = desc
                .columns
                .iter()
                .zip(arrays.iter())
                .map(|(c, a)| {
                    let mut md = std::collections::HashMap::new();
                    if let Some(d) = &c.description {
                        md.insert("description".to_string(), d.clone());
                    }
                    if c.datatype == "unicodeChar" {
                        md.insert(votable::meta::DATATYPE.to_string(), c.datatype.clone());
                    }
                    Field::new(c.name.trim_matches('"'), a.data_type().clone(), true)
                        .with_metadata(md)
                })
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            let table = MemTable::try_new(schema, vec![vec![batch]])?;
            ctx.register_table(TableReference::partial("tap_schema", name), Arc::new(table))?;
            Ok(())
        };
        let find = |n: &str| {
            self.schemas
                .iter()
                .filter(|sc| sc.name == "tap_schema")
                .flat_map(|sc| sc.tables.iter())
                .find(|t| t.name == format!("tap_schema.{n}"))
                .cloned()
        };

        // schemas
        let (mut names, mut descs, mut idx) = (vec![], vec![], vec![]);
        for (i, sc) in self.schemas.iter().enumerate() {
            names.push(Some(sc.name.clone()));
            descs.push(sc.description.clone());
            idx.push(i as i32);
        }
        let n = names.len();
        if let Some(d) = find("schemas") {
            register(
                "schemas",
                &d,
                vec![
                    str_col(names),
                    str_col(vec![None; n]),
                    str_col(descs),
                    int_col(idx),
                ],
            )?;
        }

        // tables
        let (mut sn, mut tn, mut tt, mut td, mut ti) = (vec![], vec![], vec![], vec![], vec![]);
        for (i, (sc, t)) in self.tables().enumerate() {
            sn.push(Some(sc.name.clone()));
            tn.push(Some(t.name.clone()));
            tt.push(Some(t.table_type.to_string()));
            td.push(t.description.clone());
            ti.push(i as i32);
        }
        let n = sn.len();
        if let Some(d) = find("tables") {
            register(
                "tables",
                &d,
                vec![
                    str_col(sn),
                    str_col(tn),
                    str_col(tt),
                    str_col(vec![None; n]),
                    str_col(td),
                    int_col(ti),
                ],
            )?;
        }

        // columns
        let mut c: [Vec<Option<String>>; 9] = Default::default();
        let (mut size, mut principal, mut indexed, mut std, mut cidx) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (_, t) in self.tables() {
            for (i, col) in t.columns.iter().enumerate() {
                c[0].push(Some(t.name.clone()));
                c[1].push(Some(col.name.clone()));
                c[2].push(col.utype.clone());
                c[3].push(col.ucd.clone());
                c[4].push(col.unit.clone());
                c[5].push(col.description.clone());
                c[6].push(Some(col.datatype.clone()));
                c[7].push(col.arraysize.clone());
                c[8].push(col.xtype.clone());
                size.push(None::<i32>);
                principal.push(col.principal as i32);
                indexed.push(col.indexed as i32);
                std.push(col.std as i32);
                cidx.push(i as i32);
            }
        }
        if let Some(d) = find("columns") {
            let [a, b, cc, dd, e, f, g, h, i] = c;
            register(
                "columns",
                &d,
                vec![
                    str_col(a),
                    str_col(b),
                    str_col(cc),
                    str_col(dd),
                    str_col(e),
                    str_col(f),
                    str_col(g),
                    str_col(h),
                    str_col(i),
                    Arc::new(Int32Array::from(size)),
                    int_col(principal),
                    int_col(indexed),
                    int_col(std),
                    int_col(cidx),
                ],
            )?;
        }

        // keys and key_columns
        let (mut kid, mut kfrom, mut kto) = (vec![], vec![], vec![]);
        let (mut cid, mut cfrom, mut cto) = (vec![], vec![], vec![]);
        for (_, t) in self.tables() {
            for k in &t.foreign_keys {
                kid.push(Some(k.key_id.clone()));
                kfrom.push(Some(t.name.clone()));
                kto.push(Some(k.target_table.clone()));
                for (f, to) in &k.columns {
                    cid.push(Some(k.key_id.clone()));
                    cfrom.push(Some(f.clone()));
                    cto.push(Some(to.clone()));
                }
            }
        }
        let n = kid.len();
        if let Some(d) = find("keys") {
            register(
                "keys",
                &d,
                vec![
                    str_col(kid),
                    str_col(kfrom),
                    str_col(kto),
                    str_col(vec![None; n]),
                    str_col(vec![None; n]),
                ],
            )?;
        }
        if let Some(d) = find("key_columns") {
            register(
                "key_columns",
                &d,
                vec![str_col(cid), str_col(cfrom), str_col(cto)],
            )?;
        }
        Ok(())
    }
}

/// TAP_SCHEMA as TAP 1.1 defines it.
/// Declares `unicodeChar` the TAP_SCHEMA text columns that will hold non-ASCII text (a
/// description such as "BP − RP colour"): VOTable 1.4 `char` is ASCII, and the type must be
/// known before the first byte of a result is written. The values are the metadata of
/// `served` (and of TAP_SCHEMA itself), known here.
fn mark_non_ascii(tap_schema: &mut SchemaDesc, served: &[SchemaDesc]) {
    let non_ascii = |v: &Option<String>| v.as_deref().is_some_and(|t| !t.is_ascii());
    let all = || served.iter().chain(std::iter::once(&*tap_schema));
    let mut marks: Vec<(&str, &str)> = Vec::new();
    if all().any(|sc| non_ascii(&sc.description)) {
        marks.push(("schemas", "description"));
    }
    let tables = || all().flat_map(|sc| sc.tables.iter());
    if tables().any(|t| non_ascii(&t.description)) {
        marks.push(("tables", "description"));
    }
    let columns = || tables().flat_map(|t| t.columns.iter());
    for (name, get) in [
        (
            "description",
            (|c: &ColumnDesc| &c.description) as fn(&ColumnDesc) -> &Option<String>,
        ),
        ("unit", |c| &c.unit),
        ("ucd", |c| &c.ucd),
        ("utype", |c| &c.utype),
        ("xtype", |c| &c.xtype),
    ] {
        if columns().any(|c| non_ascii(get(c))) {
            marks.push(("columns", name));
        }
    }
    for (table, column) in marks {
        let name = format!("tap_schema.{table}");
        for t in tap_schema.tables.iter_mut().filter(|t| t.name == name) {
            for c in t.columns.iter_mut().filter(|c| c.name == column) {
                c.datatype = "unicodeChar".into();
            }
        }
    }
}

fn tap_schema_desc() -> SchemaDesc {
    let fk = |id: &str, target: &str, from: &str, to: &str| ForeignKey {
        key_id: id.into(),
        target_table: format!("tap_schema.{target}"),
        columns: vec![(from.into(), to.into())],
    };
    let t = |name: &str,
             description: &str,
             columns: Vec<ColumnDesc>,
             foreign_keys: Vec<ForeignKey>| TableDesc {
        name: format!("tap_schema.{name}"),
        description: s(description),
        table_type: "table",
        rows: None,
        columns,
        foreign_keys,
    };
    SchemaDesc {
        name: "tap_schema".into(),
        description: s("Metadata of the tables this service publishes (TAP 1.1)"),
        tables: vec![
            t(
                "schemas",
                "Schemas in this service",
                vec![
                    col("schema_name", "char", "Schema name, as used in queries"),
                    col("utype", "char", "utype of the schema"),
                    col("description", "char", "Description of the schema"),
                    col(
                        "schema_index",
                        "int",
                        "Suggested order of schemas for display",
                    ),
                ],
                vec![],
            ),
            t(
                "tables",
                "Tables in this service",
                vec![
                    col("schema_name", "char", "Schema the table belongs to"),
                    col(
                        "table_name",
                        "char",
                        "Fully qualified table name, as used in queries",
                    ),
                    col("table_type", "char", "table or view"),
                    col("utype", "char", "utype of the table"),
                    col("description", "char", "Description of the table"),
                    col(
                        "table_index",
                        "int",
                        "Suggested order of tables for display",
                    ),
                ],
                vec![fk("tables_schema", "schemas", "schema_name", "schema_name")],
            ),
            t(
                "columns",
                "Columns of the tables in this service",
                vec![
                    col("table_name", "char", "Fully qualified table name"),
                    col("column_name", "char", "Column name"),
                    col("utype", "char", "utype of the column"),
                    col("ucd", "char", "UCD of the column"),
                    col("unit", "char", "Unit of the column (VOUnit)"),
                    col("description", "char", "Description of the column"),
                    col("datatype", "char", "VOTable datatype of the column"),
                    col("arraysize", "char", "VOTable arraysize of the column"),
                    col("xtype", "char", "DALI xtype of the column"),
                    col(
                        "\"size\"",
                        "int",
                        "Deprecated length of the column (TAP 1.0)",
                    ),
                    col("principal", "int", "1 if the column is of primary interest"),
                    col("indexed", "int", "1 if the column is indexed"),
                    col("std", "int", "1 if the column is defined by a standard"),
                    col(
                        "column_index",
                        "int",
                        "Suggested order of columns for display",
                    ),
                ],
                vec![fk("columns_table", "tables", "table_name", "table_name")],
            ),
            t(
                "keys",
                "Foreign keys between tables",
                vec![
                    col("key_id", "char", "Identifier of the key"),
                    col("from_table", "char", "Table holding the foreign key"),
                    col("target_table", "char", "Table the key points to"),
                    col("utype", "char", "utype of the key"),
                    col("description", "char", "Description of the key"),
                ],
                vec![
                    fk("keys_from_table", "tables", "from_table", "table_name"),
                    fk("keys_target_table", "tables", "target_table", "table_name"),
                ],
            ),
            t(
                "key_columns",
                "Columns of the foreign keys",
                vec![
                    col("key_id", "char", "Identifier of the key"),
                    col("from_column", "char", "Column in the from_table"),
                    col("target_column", "char", "Column in the target_table"),
                ],
                vec![fk("key_columns_key", "keys", "key_id", "key_id")],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datatype(ts: &SchemaDesc, table: &str, column: &str) -> Option<String> {
        ts.tables
            .iter()
            .find(|t| t.name == format!("tap_schema.{table}"))
            .and_then(|t| t.columns.iter().find(|c| c.name == column))
            .map(|c| c.datatype.clone())
    }

    #[test]
    fn text_columns_holding_non_ascii_text_are_unicode_char() {
        let mut plain = tap_schema_desc();
        mark_non_ascii(&mut plain, &[]);
        assert_eq!(
            datatype(&plain, "columns", "description").as_deref(),
            Some("char")
        );

        let mut served = tap_schema_desc();
        served.name = "synthetic".into();
        served.tables[0].columns[0].description = Some("BP − RP colour".into());
        let mut ts = tap_schema_desc();
        mark_non_ascii(&mut ts, &[served]);
        assert_eq!(
            datatype(&ts, "columns", "description").as_deref(),
            Some("unicodeChar")
        );
        for (table, column) in [
            ("tables", "description"),
            ("schemas", "description"),
            ("columns", "unit"),
            ("columns", "column_name"),
        ] {
            assert_eq!(
                datatype(&ts, table, column).as_deref(),
                Some("char"),
                "{table}.{column}"
            );
        }
    }
}
