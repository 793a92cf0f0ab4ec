//! `GET /v1/events?after=&worker=&limit=`: one page of the runtime's event history.
//!
//! `after` is a cursor (absent: from the beginning); `worker` keeps one worker's events
//! (`404 worker_not_found` for an unknown worker); `limit` is capped to
//! `events.max_page`. A page is also cut before the event that would take it past
//! `events.max_page_bytes` (it holds at least one event). The answer's `cursor` resumes
//! right after the page and `more` says whether more events follow. A cursor that is not
//! one is `400 cursor_malformed`; from another event store `400 cursor_unknown`; older
//! than retained history `400 cursor_expired`; beyond the log `400 cursor_ahead`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{Cursor, ErrorCode};
use yoi_serving::{ApiQuery, EventSource, ReplayOutcome, ServeError};

use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub after: Option<String>,
    pub worker: Option<String>,
    pub limit: Option<usize>,
}

pub async fn page(
    State(state): State<AppState>,
    query: Result<ApiQuery<EventsQuery>, ServeError>,
) -> Result<Response, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("replay", async {
            let ApiQuery(query) = query?;
            let source = state.runtime()?;
            let after = match &query.after {
                None => Cursor::new(source.epoch(), 0),
                Some(text) => Cursor::decode(text)
                    .map_err(|e| ServeError::new(ErrorCode::CursorMalformed, e.to_string()))?,
            };
            let max = &state.config().events;
            let limit = query
                .limit
                .unwrap_or(max.max_page.get())
                .min(max.max_page.get());
            if let Some(worker) = &query.worker {
                source.runtime().get_worker(worker).await?;
            }
            let page = source
                .replay(after, query.worker.as_deref(), limit)
                .await
                .map_err(ReplayOutcome::into_error)?;
            encode(&page, max.max_page_bytes.get())
        })
        .await
}

/// Most bytes after the events: `],"cursor":"<34 bytes>","more":false}`.
const TAIL: usize = 64;

/// The page as an `EventsPage` body, cut before the event that would take it past
/// `max_bytes`.
fn encode(page: &ReplayPage, max_bytes: usize) -> Result<Response, ServeError> {
    let mut body = String::from(r#"{"events":["#);
    let (mut cursor, mut more) = (page.next, page.more);
    for (i, env) in page.events.iter().enumerate() {
        let json = serde_json::to_string(&**env)
            .map_err(|e| ServeError::internal(format!("cannot encode an event: {e}")))?;
        if i > 0 && body.len() + 1 + json.len() + TAIL > max_bytes {
            cursor = Cursor::new(page.next.epoch, page.events[i - 1].seq);
            more = true;
            break;
        }
        if i > 0 {
            body.push(',');
        }
        body.push_str(&json);
    }
    body.push_str(r#"],"cursor":""#);
    cursor.write_to(&mut body);
    body.push_str(r#"","more":"#);
    body.push_str(if more { "true" } else { "false" });
    body.push('}');
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use yoi_protocol::{Envelope, Event, EventsPage};

    async fn decode(response: Response) -> EventsPage {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn pages_are_events_pages_cut_at_the_byte_budget() {
        let events: Vec<Arc<Envelope>> = (1..=3)
            .map(|seq| {
                Arc::new(Envelope {
                    seq,
                    worker_id: Some("w_1".into()),
                    at_ms: seq,
                    event: Event::TextDelta {
                        run_id: "r_1".into(),
                        text: "x".repeat(100),
                    },
                })
            })
            .collect();
        let page = ReplayPage {
            events: events.clone(),
            next: Cursor::new(7, 9),
            more: false,
        };
        let whole = decode(encode(&page, 1 << 20).unwrap()).await;
        assert_eq!(whole.events.len(), 3);
        assert_eq!((whole.cursor, whole.more), (Cursor::new(7, 9), false));
        assert_eq!(whole.events[2], *events[2]);

        // Room for two events: cut after the second, resuming right after it.
        let two = EventsPage {
            events: events[..2].iter().map(|e| (**e).clone()).collect(),
            cursor: Cursor::new(7, 2),
            more: true,
        };
        let room = serde_json::to_string(&two).unwrap().len() + TAIL;
        let cut = decode(encode(&page, room).unwrap()).await;
        assert_eq!(cut.events.len(), 2);
        assert_eq!((cut.cursor, cut.more), (Cursor::new(7, 2), true));
        // However small the budget, a page holds one event (else a client could not
        // get past a large one).
        let one = decode(encode(&page, 1).unwrap()).await;
        assert_eq!(one.events.len(), 1);
        assert_eq!(one.cursor, Cursor::new(7, 1));
    }
}
