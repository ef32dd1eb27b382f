//! Partners and their templates: data loaded from directories (`maestro partner import`), kept in
//! the store, and compiled into validators and renderers by the [`Catalog`].

pub mod bundle;
pub mod catalog;
pub mod markup;
pub mod render;
pub mod url_policy;
pub mod valid_metadata;

pub use catalog::{CachedPartner, Catalog, CompiledTemplate};
pub use render::{AlertFields, RenderError, Renderer};
pub use url_policy::UrlPolicy;
pub use valid_metadata::{CheckedMetadata, ValidMetadata};

/// The JSON Schema `format` a template uses for a link or image URL: checked against the
/// partner's [`UrlPolicy`].
pub const PARTNER_URL_FORMAT: &str = "partner-url";

/// Compiles a template's metadata schema for a partner's URL policy.
pub fn compile_schema(
    schema: &serde_json::Value,
    policy: UrlPolicy,
) -> anyhow::Result<jsonschema::Validator> {
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format(PARTNER_URL_FORMAT, move |url: &str| policy.allows(url))
        .build(schema)
        .map_err(|err| anyhow::anyhow!("invalid JSON Schema: {err}"))
}
