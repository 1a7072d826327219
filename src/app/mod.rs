//! The application: configuration ([`config`]), the state built at start from it
//! ([`state`]: storage, demo data, engine, job service, users' space, identity), and the HTTP
//! server with every protocol's routes ([`routes`]) — the only place that knows every
//! protocol — and live publishing ([`live`]: what a running server does when the data
//! folder's publication changes, and the `/admin` API).

pub mod config;
mod coverage;
mod index;
mod landing;
pub mod live;
pub mod metrics;
pub mod oai;
mod portal;
mod resolver;
pub mod routes;
pub mod state;

pub use config::Config;
