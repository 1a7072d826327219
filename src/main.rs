//! vostok: a Virtual Observatory data server. TAP/ADQL, Cone Search, SIA, SSA, DataLink and
//! VOSpace over HEALPix-partitioned Parquet catalogs (HATS) and FITS products in object storage.
//!
//! This binary is thin over the library crates (`adql`, `votable`, `storage`, `catalogs`,
//! `uws`, `vospace`). Its modules, from the top (each may use only those below it; see
//! docs/architecture.md, checked by tests/layout.rs):
//!
//! * [`cli`]: the command line;
//! * [`app`]: configuration, the state built at start, the routes (the only place that knows
//!   every protocol), the landing page;
//! * [`protocols`]: one module per IVOA protocol front, each a thin translation of HTTP into
//!   the shared query path or the library crates; they never use each other;
//! * [`products`]: images and spectra as served (ObsCore table, their query expressions);
//! * [`identity`]: who is calling (tokens, OIDC logins);
//! * [`dali`]: what every protocol front shares (parameters, errors, MAXREC, result
//!   responses, VOSI, capabilities as data, the UWS binding);
//! * [`engine`]: the DataFusion session over the catalogs, TAP_SCHEMA, and result streams;
//! * [`publish`]: putting data in (catalog and FITS-collection ingest, the demo data).

mod app;
mod cli;
mod dali;
mod engine;
mod identity;
mod products;
mod protocols;
mod publish;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    cli::main()
}
