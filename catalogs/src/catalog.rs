//! Opening a stored HATS catalog: properties, partition list, schema and column metadata.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::hats::{Pixel, HEALPIX_COLUMN};
use crate::meta::{CatalogMeta, ColumnMeta, TableMeta, METADATA_FILE};
use crate::Error;
use storage::Storage;

/// One partition file of a catalog.
#[derive(Debug, Clone)]
pub struct PartitionFile {
    /// Its HEALPix pixel.
    pub pixel: Pixel,
    /// Full object-store path.
    pub path: Path,
    /// Size in bytes.
    pub size: u64,
}

/// A catalog ready to be served.
#[derive(Debug)]
pub struct HatsCatalog {
    /// Metadata (from `vostok.toml`, or derived from the HATS files).
    pub meta: CatalogMeta,
    /// Root of the catalog in the store.
    pub root: Path,
    /// Schema of the stored files (`_healpix_29` included).
    pub file_schema: SchemaRef,
    /// Published schema: the columns in metadata order, with field metadata, without `_healpix_29`.
    pub schema: SchemaRef,
    /// For each published column, its index in `file_schema`.
    pub file_index: Vec<usize>,
    /// Index of `_healpix_29` in the file schema, when present.
    pub healpix_index: Option<usize>,
    /// Partition files, sorted by their order-29 range.
    pub partitions: Vec<PartitionFile>,
    /// Total rows (from the properties).
    pub rows: Option<u64>,
}

/// Parses a Java-style properties file.
pub fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Opens the HATS catalog whose root is `root` (relative to the storage prefix).
pub async fn open_catalog(storage: &Storage, root: &str) -> Result<HatsCatalog, Error> {
    let root_path = storage.path(root);
    let props_bytes = match storage
        .get(&storage.path(&format!("{root}/hats.properties")))
        .await
    {
        Ok(b) => b,
        Err(_) => {
            storage
                .get(&storage.path(&format!("{root}/properties")))
                .await?
        }
    };
    let props = parse_properties(&String::from_utf8_lossy(&props_bytes));

    // The Parquet schema.
    let common = storage
        .get(&storage.path(&format!("{root}/dataset/_common_metadata")))
        .await?;
    let md = ParquetMetaDataReader::new().parse_and_finish(&common)?;
    let file_schema = Arc::new(parquet_to_arrow_schema(
        md.file_metadata().schema_descr(),
        md.file_metadata().key_value_metadata(),
    )?);

    // Metadata: vostok.toml when present, else derived from the properties and schema.
    let meta_path = storage.path(&format!("{root}/{METADATA_FILE}"));
    let meta = if storage.exists(&meta_path).await? {
        CatalogMeta::from_toml(&String::from_utf8_lossy(&storage.get(&meta_path).await?))?
    } else {
        derived_meta(root, &props, &file_schema)?
    };

    // Published schema.
    let mut fields = Vec::new();
    let mut file_index = Vec::new();
    for c in &meta.columns {
        let idx = file_schema
            .fields()
            .iter()
            .position(|f| f.name() == &c.name)
            .or_else(|| {
                file_schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(&c.name))
            })
            .ok_or_else(|| {
                Error::Layout(format!("column '{}' is not in the Parquet files", c.name))
            })?;
        let f = file_schema.field(idx);
        fields.push(Arc::new(c.decorate(&Field::new(
            &c.name,
            f.data_type().clone(),
            true,
        ))));
        file_index.push(idx);
    }
    let schema = Arc::new(Schema::new(fields));
    let healpix_index = file_schema
        .fields()
        .iter()
        .position(|f| f.name() == HEALPIX_COLUMN);

    // Partitions: partition_info.csv, sizes from one listing of dataset/.
    let info = storage
        .get(&storage.path(&format!("{root}/partition_info.csv")))
        .await?;
    let info = String::from_utf8_lossy(&info);
    let mut lines = info.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (oi, pi) = match (col("Norder"), col("Npix")) {
        (Some(o), Some(p)) => (o, p),
        _ => return Err(Error::Layout("partition_info.csv lacks Norder,Npix".into())),
    };
    let mut sizes = HashMap::new();
    let dataset = storage.path(&format!("{root}/dataset"));
    let mut listing = storage.store.list(Some(&dataset));
    while let Some(obj) = listing.try_next().await? {
        sizes.insert(obj.location.to_string(), obj.size);
    }
    let mut partitions = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let parse = |i: usize| cells.get(i).and_then(|c| c.parse::<u64>().ok());
        let (Some(order), Some(pixel)) = (parse(oi), parse(pi)) else {
            return Err(Error::Layout(format!(
                "bad partition_info.csv line '{line}'"
            )));
        };
        if order > 29 {
            return Err(Error::Layout(format!("partition order {order} > 29")));
        }
        let px = Pixel {
            order: order as u8,
            pixel,
        };
        let path = storage.path(&format!("{root}/{}", px.file_path()));
        let size = *sizes
            .get(&path.to_string())
            .ok_or_else(|| Error::Layout(format!("partition file {path} is missing")))?;
        partitions.push(PartitionFile {
            pixel: px,
            path,
            size,
        });
    }
    partitions.sort_by_key(|p| p.pixel.range29().start);
    let rows = props.get("hats_nrows").and_then(|v| v.parse().ok());
    Ok(HatsCatalog {
        meta,
        root: root_path,
        file_schema,
        schema,
        file_index,
        healpix_index,
        partitions,
        rows,
    })
}

/// Metadata for a HATS catalog made elsewhere (no `vostok.toml`): every column but the index.
fn derived_meta(
    root: &str,
    props: &HashMap<String, String>,
    schema: &Schema,
) -> Result<CatalogMeta, Error> {
    let name = props
        .get("obs_collection")
        .cloned()
        .unwrap_or_else(|| root.rsplit('/').next().unwrap_or("catalog").to_string());
    let need = |k: &str| {
        props
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Layout(format!("hats.properties lacks {k}")))
    };
    let columns = schema
        .fields()
        .iter()
        .filter(|f| {
            f.name() != HEALPIX_COLUMN && !matches!(f.name().as_str(), "Norder" | "Dir" | "Npix")
        })
        .map(|f| ColumnMeta {
            name: f.name().clone(),
            unit: f.metadata().get("unit").cloned(),
            ucd: f.metadata().get("ucd").cloned(),
            description: f.metadata().get("description").cloned(),
            ..Default::default()
        })
        .collect();
    Ok(CatalogMeta {
        table: TableMeta {
            title: props.get("obs_title").cloned(),
            description: props.get("obs_description").cloned(),
            ..TableMeta::new(
                "hats",
                &crate::source::sanitise(&name),
                &need("hats_col_ra")?,
                &need("hats_col_dec")?,
            )
        },
        source: None,
        columns,
    })
}
