//! Putting data in: a catalog's metadata file and raw source into a HATS catalog
//! ([`catalog`]), a folder of FITS images and spectra into a collection of stored files,
//! ObsCore records and header cards ([`products`]), and the demo data on first start
//! ([`demo`]), and each collection's coverage ([`coverage`]). Long work shows progress on a
//! terminal.

pub mod catalog;
pub mod coverage;
pub mod demo;
pub mod products;
