//! The HTTP surface of the api, one module per area, assembled with the
//! OpenAPI document generated from the handlers.

mod account;
mod admin;
mod attachments;
mod auth;
mod avatar;
mod blocks;
mod calls;
mod dms;
mod events;
mod health;
mod invite_links;
mod invites;
mod members;
mod messages;
mod moderation;
mod reports;
mod rooms;
mod search;
mod users;

use axum::Json;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use attachments::UPLOAD_ROUTE;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "chat-api", description = "Users, sessions, rooms, members and history of the chat system."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the handlers refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route, plus `/v1/openapi.json` describing them. `/metrics` is
/// added by whoever serves these: `chat-api` beside them (its port is
/// internal), `chat` on a listener of its own.
pub fn router(state: &AppState) -> Router<AppState> {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router(state))
        .merge(users::router())
        .merge(account::router())
        .merge(avatar::router())
        .merge(blocks::router())
        .merge(calls::router())
        .merge(rooms::router())
        .merge(members::router())
        .merge(invites::router())
        .merge(invite_links::router())
        .merge(dms::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(moderation::router())
        .merge(attachments::router())
        .merge(search::router())
        .merge(admin::router())
        .merge(reports::router())
        .split_for_parts();
    router.route(
        "/v1/openapi.json",
        axum::routing::get(move || async move { Json(openapi) }),
    )
}
