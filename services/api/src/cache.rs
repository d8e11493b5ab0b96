//! Answers computed once per batch (docs/contracts.md, "HTTP API"): between two commits nothing
//! `/orders`, `/stats` or the batch list of `/batches` shows can change, so an answer is kept
//! per (route and normalized query, batch id) in a bounded [`moka`] cache and served until the
//! batch listener says a newer batch committed. Every answer carries an `ETag` and a matching
//! `If-None-Match` gets `304 Not Modified`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// At most this many bytes of answers are kept (the least used go first).
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// One answer as sent: its JSON, its tag, and the batch it is as of.
#[derive(Debug)]
pub struct Answer {
    pub body: Bytes,
    pub etag: HeaderValue,
    pub as_of_batch: i64,
    /// That batch's `finished_at`, for `Spine-Batch-Age`.
    pub as_of_batch_at: Option<DateTime<Utc>>,
}

impl Answer {
    /// `body` tagged by `as_of_batch` and a hash of the body itself, so two different bodies
    /// never share a tag (not even across a database that was wiped and refilled).
    pub fn new(body: Vec<u8>, as_of_batch: i64, as_of_batch_at: Option<DateTime<Utc>>) -> Answer {
        let etag = etag(as_of_batch, &body);
        Answer {
            body: Bytes::from(body),
            etag,
            as_of_batch,
            as_of_batch_at,
        }
    }

    /// 304 when `request` already holds this answer, else the JSON; `Cache-Control: no-cache`
    /// (keep it, but ask again) and `Spine-Batch-Age` either way.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let mut response = if not_modified(request, &self.etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(self.body.clone()),
            )
                .into_response()
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Some(age) = self.as_of_batch_at.and_then(|at| batch_age(at, Utc::now())) {
            h.insert("spine-batch-age", age);
        }
        response
    }
}

/// `"<batch>-<16 hex digits of a hash of body>"`.
pub fn etag(as_of_batch: i64, body: &[u8]) -> HeaderValue {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    HeaderValue::from_str(&format!("\"{as_of_batch}-{:016x}\"", h.finish()))
        .expect("digits and quotes are a valid header value")
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare equal to strong ones.
pub fn not_modified(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// `Spine-Batch-Age`: seconds from the batch's `finished_at` to `now`, 3 decimals, never
/// negative (clocks of the processor and the API may differ by a little).
pub fn batch_age(at: DateTime<Utc>, now: DateTime<Utc>) -> Option<HeaderValue> {
    let s = ((now - at).num_microseconds()? as f64 / 1e6).max(0.0);
    HeaderValue::from_str(&format!("{s:.3}")).ok()
}

/// The cache: (route and normalized query, batch id) → answer.
#[derive(Clone)]
pub struct AnswerCache {
    inner: moka::future::Cache<(String, i64), Arc<Answer>>,
}

impl AnswerCache {
    pub fn new(max_bytes: u64) -> AnswerCache {
        AnswerCache {
            inner: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &(String, i64), v: &Arc<Answer>| {
                    u32::try_from(k.0.len() + v.body.len() + 128).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The answer kept for `key` as of `batch`, else `compute`'s, kept. Requests that miss
    /// together wait for one computation (a new batch makes every client miss at once; without
    /// this they would all ask Postgres and be shed). The flag says whether this call computed.
    pub async fn get_or_compute<F>(
        &self,
        key: String,
        batch: i64,
        compute: F,
    ) -> Result<(Arc<Answer>, bool), Arc<crate::error::ApiError>>
    where
        F: std::future::Future<Output = Result<Answer, crate::error::ApiError>>,
    {
        let computed = std::sync::atomic::AtomicBool::new(false);
        let answer = self
            .inner
            .try_get_with((key, batch), async {
                computed.store(true, std::sync::atomic::Ordering::Relaxed);
                compute.await.map(Arc::new)
            })
            .await?;
        Ok((answer, computed.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// Forgets everything (the batch ids went backwards: a database wiped and refilled).
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::new(MAX_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(v).expect("value"),
        );
        h
    }

    #[test]
    fn the_tag_follows_the_batch_and_the_body() {
        let a = etag(7, b"{\"orders\":[]}");
        assert_eq!(a, etag(7, b"{\"orders\":[]}"));
        assert_ne!(a, etag(8, b"{\"orders\":[]}"), "a new batch is a new tag");
        assert_ne!(a, etag(7, b"{\"orders\":[1]}"), "another body is a new tag");
        assert!(a.to_str().expect("ascii").starts_with("\"7-"));
    }

    #[test]
    fn if_none_match_matches_lists_weak_tags_and_star_only() {
        let tag = etag(3, b"x");
        let t = tag.to_str().expect("ascii");
        assert!(not_modified(&inm(t), &tag));
        assert!(not_modified(&inm(&format!("\"1-0\", W/{t}")), &tag));
        assert!(not_modified(&inm("*"), &tag));
        assert!(!not_modified(&inm("\"3-0000000000000000\""), &tag));
        assert!(!not_modified(&HeaderMap::new(), &tag));
    }

    #[test]
    fn the_batch_age_has_three_decimals_and_is_never_negative() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let later = at + chrono::Duration::milliseconds(1234);
        assert_eq!(batch_age(at, later).expect("age"), "1.234");
        assert_eq!(batch_age(later, at).expect("age"), "0.000");
    }

    async fn get(cache: &AnswerCache, key: &str, batch: i64, body: &[u8]) -> bool {
        let body = body.to_vec();
        let (_, computed) = cache
            .get_or_compute(key.into(), batch, async move {
                Ok(Answer::new(body, batch, None))
            })
            .await
            .expect("answer");
        computed
    }

    #[tokio::test]
    async fn answers_are_kept_per_query_and_batch_and_bounded() {
        let cache = AnswerCache::new(10_000);
        assert!(
            get(&cache, "orders?limit=1", 5, b"a").await,
            "first: computed"
        );
        assert!(!get(&cache, "orders?limit=1", 5, b"a").await, "then kept");
        assert!(
            get(&cache, "orders?limit=1", 6, b"a").await,
            "a newer batch misses"
        );
        assert!(get(&cache, "orders?limit=2", 5, b"a").await);
        for i in 0..1000 {
            get(&cache, &format!("q{i}"), 1, &[b'x'; 1000]).await;
        }
        cache.inner.run_pending_tasks().await;
        assert!(
            cache.inner.weighted_size() <= 10_000,
            "{}",
            cache.inner.weighted_size()
        );
        cache.clear();
        cache.inner.run_pending_tasks().await;
        assert!(get(&cache, "orders?limit=1", 5, b"a").await, "cleared");
    }

    #[tokio::test]
    async fn clients_missing_together_compute_once() {
        let cache = AnswerCache::new(10_000);
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute("q".into(), 1, async move {
                            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok(Answer::new(b"x".to_vec(), 1, None))
                        })
                        .await
                        .expect("answer");
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
