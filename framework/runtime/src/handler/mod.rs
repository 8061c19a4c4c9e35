//! Handlers: route parsing, the typed handler registry, filters and the
//! one [`Pipeline`] that runs them (before filters → handler → after
//! filters → §5.5 error mapping, or the [`Forwarder`] for routes of another
//! server type).
//!
//! This layer is generic over the context handed to handlers (the app), so
//! it depends on sessions and the protocol only.

pub mod error;
pub mod filter;
mod forward;
pub mod pipeline;
pub mod registry;
pub mod route;

pub use error::HandlerError;
pub use filter::{AfterFilter, BeforeFilter, FilterContext};
pub use forward::Forwarder;
pub use pipeline::Pipeline;
pub use registry::Handler;
pub use route::{Route, RouteError};
