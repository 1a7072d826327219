//! VOSpace 2.1: a cloud folder for every user, on object storage.
//!
//! * [`model`]: nodes, properties, transfers and faults, shared by the parts below.
//! * [`xml`]: the VOSpace 2.1 XML documents (node, transfer, protocols, views, properties),
//!   read and written with quick-xml.
//! * [`store`]: node metadata in SQLite, bytes in object storage (crash-safe writes), users,
//!   tokens, groups, access control and quotas.
//! * [`http`]: the REST binding at `/vospace` (nodes, synctrans, transfers, data endpoints).
//! * [`oidc`]: optional OpenID Connect login (JWTs of a configured issuer, checked against its
//!   published keys).

pub mod http;
pub mod model;
pub mod oidc;
pub mod store;
pub mod xml;
