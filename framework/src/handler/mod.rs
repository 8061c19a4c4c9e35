//! Handlers: route parsing, the typed handler registry, filters and the
//! §5.5 error mapping. [`App`](crate::app::App) ties them together in
//! `App::handle`.

pub mod error;
pub mod filter;
pub mod registry;
pub mod route;

pub use error::HandlerError;
pub use filter::{AfterFilter, BeforeFilter, FilterContext};
pub use registry::Handler;
pub use route::{Route, RouteError};
