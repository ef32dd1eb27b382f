//! Discovery (SPEC §4.1): a partner's templates, each with the JSON Schema of its `metadata`.

use axum::{Json, extract::Path};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::{error::ErrorBody, extract::PartnerReader};
use crate::{error::Error, partners::CompiledTemplate};

/// One template, at its latest version.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateBody {
    pub template_id: String,
    /// Alerts record the version they were checked and rendered with.
    pub version: i64,
    /// When this version was imported (RFC 3339).
    pub updated_at: String,
    /// The JSON Schema an alert's `metadata` must satisfy. `"format": "partner-url"` marks a
    /// link or image: `https` on the partner's allowed domains.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

impl From<&CompiledTemplate> for TemplateBody {
    fn from(template: &CompiledTemplate) -> Self {
        TemplateBody {
            template_id: template.template_id.clone(),
            version: template.version,
            updated_at: template.created_at.format(&Rfc3339).unwrap_or_default(),
            schema: template.schema.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TemplateListBody {
    /// By id.
    pub templates: Vec<TemplateBody>,
}

/// The calling partner's templates.
///
/// Only the partner's own, each at its latest version. A read: it does not count against the
/// partner's rate limit.
#[utoipa::path(
    get, path = "/maestro/v4/templates", tag = "alerts", operation_id = "listTemplates",
    responses(
        (status = 200, description = "The partner's templates, by id", body = TemplateListBody),
        (status = 401, description = "No bearer token, or one that fails verification", body = ErrorBody),
        (status = 403, description = "The token lacks maestro.alerts.writeonly, or names no registered partner", body = ErrorBody),
        (status = 503, description = "Overloaded, or the database cannot be reached", body = ErrorBody),
        (status = 504, description = "The database did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn list(PartnerReader(caller): PartnerReader) -> Json<TemplateListBody> {
    let templates = caller
        .templates()
        .iter()
        .map(|template| TemplateBody::from(template.as_ref()))
        .collect();
    Json(TemplateListBody { templates })
}

/// One of the calling partner's templates.
///
/// Another partner's template is as unknown as one that does not exist. A read: it does not
/// count against the partner's rate limit.
#[utoipa::path(
    get, path = "/maestro/v4/templates/{templateId}", tag = "alerts", operation_id = "getTemplate",
    params(("templateId" = String, Path, description = "The id alerts name in `templateId`")),
    responses(
        (status = 200, description = "The template at its latest version", body = TemplateBody),
        (status = 400, description = "The templateId holds a character maestro does not accept", body = ErrorBody),
        (status = 401, description = "No bearer token, or one that fails verification", body = ErrorBody),
        (status = 403, description = "The token lacks maestro.alerts.writeonly, or names no registered partner", body = ErrorBody),
        (status = 404, description = "UNKNOWN_TEMPLATE: the partner has no template with this id", body = ErrorBody),
        (status = 503, description = "Overloaded, or the database cannot be reached", body = ErrorBody),
        (status = 504, description = "The database did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = ["maestro.alerts.writeonly"]))
)]
pub async fn show(
    PartnerReader(caller): PartnerReader,
    Path(template_id): Path<String>,
) -> Result<Json<TemplateBody>, Error> {
    Ok(Json(TemplateBody::from(
        caller.template(&template_id)?.as_ref(),
    )))
}
