//! The IVOA protocol fronts, one module each: a thin translation of HTTP parameters into the
//! shared query path (`crate::engine`, through `crate::dali`) or into the library crates.
//! Each registers its own routes (`routes`) and takes the narrow handles it needs as actix
//! application data (`Engine`, `Service`, `uws::Jobs`, its own settings); none imports another
//! (tests/layout.rs checks it), so a fix to the shared path fixes every protocol.

pub mod datalink;
pub mod files;
pub mod scs;
pub mod sia;
pub mod ssa;
pub mod tap;
pub mod vospace;
