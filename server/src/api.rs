//! HTTP routes, the error mapping and the OpenAPI document.
use crate::auth::{self, Enrolled};
use crate::pull::{self, PullPage, PullQuery, RowState, RowsRequest};
use crate::push::{self, PushRequest, PushResponse};
use crate::{AppState, Metrics, MAX_BODY, PROTOCOL};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use timebank_core::{Code, CoreError, Lang};
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;

/// An error as the wire carries it: `{ "code", "detail", "message" }` with an HTTP status per
/// code. Internal detail (database errors) is logged, never returned.
pub struct ApiError {
    status: StatusCode,
    error: CoreError,
    lang: Lang,
}

impl ApiError {
    pub fn new(status: StatusCode, error: CoreError, lang: Lang) -> Self {
        ApiError {
            status,
            error,
            lang,
        }
    }
    fn from_core(e: CoreError, lang: Lang) -> Self {
        let status = match e.code {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Forbidden | Code::OutOfScope => StatusCode::FORBIDDEN,
            Code::ResyncRequired => StatusCode::GONE,
            Code::Database | Code::Io => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError {
            status,
            error: e,
            lang,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut e = self.error;
        if e.code == Code::Database {
            tracing::error!(detail = ?e.detail, "internal error");
            e.detail.clear();
        }
        (self.status, Json(e.to_wire(self.lang))).into_response()
    }
}

fn lang_of(h: &HeaderMap) -> Lang {
    match h.get("accept-language").and_then(|v| v.to_str().ok()) {
        Some(l) if l.to_ascii_lowercase().starts_with("en") => Lang::En,
        _ => Lang::Zh,
    }
}

fn now_ms() -> i64 {
    timebank_core::service::now_ms()
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub protocol: u32,
    pub schema_version: i32,
}

/// Liveness and the versions served.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    use sea_orm::ConnectionTrait;
    s.db.execute_unprepared("SELECT 1")
        .await
        .map_err(|e| ApiError::from_core(e.into(), Lang::En))?;
    Ok(Json(Health {
        status: "ok".into(),
        protocol: PROTOCOL,
        schema_version: timebank_migrations::SCHEMA_VERSION,
    }))
}

/// Counters in Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, body = String, content_type = "text/plain")))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrolRequest {
    pub code: String,
    pub device_name: String,
}

/// Exchange a one-time enrolment code for a device token.
#[utoipa::path(post, path = "/v1/enrol", request_body = EnrolRequest, responses((status = 200, body = Enrolled), (status = 403, description = "unknown, used or expired code")))]
async fn enrol(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<EnrolRequest>,
) -> Result<Json<Enrolled>, ApiError> {
    let lang = lang_of(&headers);
    let e = auth::enrol(&s.db, &req.code, &req.device_name, now_ms())
        .await
        .map_err(|e| {
            Metrics::inc(&s.metrics.auth_failures);
            ApiError::from_core(e, lang)
        })?;
    Metrics::inc(&s.metrics.enrolments);
    Ok(Json(e))
}

async fn device(s: &AppState, headers: &HeaderMap) -> Result<auth::Device, ApiError> {
    let lang = lang_of(headers);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let refused = |s: &AppState| {
        Metrics::inc(&s.metrics.auth_failures);
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            CoreError::new(Code::Forbidden).with(
                "action",
                "sync without a valid device token (enrol the device first)",
            ),
            lang,
        )
    };
    let Some(token) = token else {
        return Err(refused(s));
    };
    match auth::authenticate(&s.db, token, now_ms()).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(refused(s)),
        Err(e) => Err(ApiError::from_core(e, lang)),
    }
}

/// Push outbox mutations; each is applied once and its result stored under (device, seq).
#[utoipa::path(post, path = "/v1/push", request_body = PushRequest, responses((status = 200, body = PushResponse), (status = 401, description = "no or bad device token"), (status = 422, description = "more than 5,000 mutations, or a mutation of a schema newer than the server's: nothing applied or recorded"), (status = 426, description = "client too old")), security(("device_token" = [])))]
async fn push_handler(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    let lang = lang_of(&headers);
    let d = device(&s, &headers).await?;
    let _pushing = crate::Pushing::start(&s);
    let r = s
        .pushes
        .push(&s.writer, &s.metrics, &d, req, lang)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    if r.carefully {
        Metrics::inc(&s.metrics.push_batches_careful);
    }
    for x in r.results.iter() {
        let c = match (x.duplicate, x.status.as_str()) {
            (true, _) => &s.metrics.mutations_duplicate,
            (false, "applied") => &s.metrics.mutations_applied,
            _ => &s.metrics.mutations_rejected,
        };
        Metrics::inc(c);
    }
    Ok(Json(r))
}

/// Changes of one partition after a sequence, in sequence order.
#[utoipa::path(get, path = "/v1/pull", params(PullQuery), responses((status = 200, body = PullPage), (status = 401, description = "no or bad device token"), (status = 403, description = "a community the device may not read"), (status = 410, description = "the cursor is below the partition's horizon: pull it again from 0")), security(("device_token" = [])))]
async fn pull_handler(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PullQuery>,
) -> Result<Json<PullPage>, ApiError> {
    let lang = lang_of(&headers);
    let d = device(&s, &headers).await?;
    s.after_pushes().await;
    // The semaphore is never closed; were it, the page would be read without a turn.
    let _turn = s.pulls.acquire().await.ok();
    Ok(Json(
        pull::pull(&s.db, &d, &q)
            .await
            .map_err(|e| ApiError::from_core(e, lang))?,
    ))
}

/// The current version of rows the device changed optimistically (to repair them).
#[utoipa::path(post, path = "/v1/rows", request_body = RowsRequest, responses((status = 200, body = Vec<RowState>)), security(("device_token" = [])))]
async fn rows_handler(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<RowsRequest>,
) -> Result<Json<Vec<RowState>>, ApiError> {
    let lang = lang_of(&headers);
    let d = device(&s, &headers).await?;
    Ok(Json(
        pull::rows(&s.db, &d, &req)
            .await
            .map_err(|e| ApiError::from_core(e, lang))?,
    ))
}

/// The dashboard figures of the whole city: every community, with the breakdown by
/// community and by service field. Aggregates only (no one's personal data); for center
/// devices, whose staff answer for the figures.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct CityDashboard {
    /// When the figures were computed (ms since the epoch, the server's clock).
    pub at: i64,
    /// Communities in the city.
    pub communities: i64,
    /// The figures, as the desktop app's dashboard shows them (`by_community` lists every
    /// community of the city).
    #[schema(value_type = Object)]
    pub figures: serde_json::Value,
}

#[utoipa::path(get, path = "/v1/city/dashboard", responses((status = 200, body = CityDashboard), (status = 401, description = "no or bad device token"), (status = 403, description = "not a center device")), security(("device_token" = [])))]
async fn city_dashboard(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CityDashboard>, ApiError> {
    let lang = lang_of(&headers);
    let d = device(&s, &headers).await?;
    if d.role != "center" {
        return Err(ApiError::from_core(
            CoreError::forbidden("see the city-wide dashboard (center devices only)"),
            lang,
        ));
    }
    let at = now_ms();
    let figures = timebank_core::read::dashboard(&s.db, None, at)
        .await
        .map_err(|e| ApiError::from_core(e, lang))?;
    let communities = timebank_core::sql::scalar_i64(
        &s.db,
        "SELECT COUNT(*) FROM places WHERE level = 'community'",
        vec![],
    )
    .await
    .map_err(|e| ApiError::from_core(e, lang))?;
    Ok(Json(CityDashboard {
        at,
        communities,
        figures: serde_json::to_value(figures).unwrap_or_default(),
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Time bank city server",
        description = "Device enrolment and offline-first sync of the time bank (时间银行)."
    ),
    paths(
        health,
        metrics,
        enrol,
        push_handler,
        pull_handler,
        rows_handler,
        city_dashboard
    ),
    components(schemas(
        Health,
        EnrolRequest,
        Enrolled,
        PushRequest,
        PushResponse,
        push::PushMutation,
        push::PushResult,
        PullPage,
        pull::Change,
        RowsRequest,
        RowState,
        pull::RowKey,
        CityDashboard
    ))
)]
pub struct ApiDoc;

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Every sync request names its protocol version; the server serves this one and the one
/// before. A client that is too old is told to update (it keeps its outbox meanwhile).
async fn versions(State(s): State<AppState>, req: Request, next: Next) -> Response {
    Metrics::inc(&s.metrics.requests);
    if req.uri().path().starts_with("/v1/") {
        let lang = lang_of(req.headers());
        let v = req
            .headers()
            .get("x-timebank-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        match v {
            Some(v) if (crate::MIN_PROTOCOL..=PROTOCOL).contains(&v) => {}
            _ => {
                let e = CoreError::invalid(
                    "protocol",
                    "软件版本过旧，请更新后再同步；未同步的数据会保留在本机",
                    "this app is too old to sync; update it (unsynced changes stay on this device)",
                )
                .with("server_protocol", PROTOCOL);
                return ApiError::new(StatusCode::UPGRADE_REQUIRED, e, lang).into_response();
            }
        }
    }
    next.run(req).await
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/enrol", post(enrol))
        .route("/v1/push", post(push_handler))
        .route("/v1/pull", get(pull_handler))
        .route("/v1/rows", post(rows_handler))
        .route("/v1/city/dashboard", get(city_dashboard))
        .layer(middleware::from_fn_with_state(state.clone(), versions))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(RequestDecompressionLayer::new())
        // The fastest level: a pull of the whole change log is mostly compression otherwise.
        .layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest))
        .with_state(state)
}
