//! Partners and their templates: data loaded from directories (`maestro partner import`),
//! checked before they are imported ([`check`]), kept in the store, and compiled into validators
//! and renderers by the [`Catalog`].

pub mod bundle;
pub mod catalog;
pub mod check;
pub mod markup;
mod reloaded;
pub mod render;
pub mod schema;
pub mod url_policy;
pub mod valid_metadata;

pub use catalog::{CachedPartner, Catalog, CompiledTemplate};
pub use render::{AlertFields, RenderError, Renderer};
pub use schema::{PARTNER_URL_FORMAT, compile_schema};
pub use url_policy::UrlPolicy;
pub use valid_metadata::{CheckedMetadata, ValidMetadata};
