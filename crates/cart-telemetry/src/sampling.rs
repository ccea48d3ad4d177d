//! Head sampling that spares unsampled requests the OpenTelemetry work.
//!
//! `tracing-opentelemetry` builds every span it sees (a builder, its attributes, its
//! parent's context) and only asks the sampler when the span starts; at 1 % sampling,
//! 99 % of that work is thrown away. So the service asks once per request, at its root
//! span ([`unsampled`]), and runs an unsampled request inside [`scope`]: while that
//! scope is polled, the OpenTelemetry layer's filter ([`layer_filter`]) hides every new
//! span and event from the layer, so none of them is built. The logs still see them.
//!
//! An unsampled request stores no context with its events ([`crate::trace_metadata`]):
//! a `traceparent` with flag `00` in every event row and stream message cost more
//! (`make bench-tracing`) than a consistent decision downstream is worth; a consumer of
//! the stream starts its own trace at its own ratio.
//!
//! Spans that serve many requests (a group-commit batch, a relay page) are roots linked
//! to them. [`FollowLinks`] samples such a root when one of its links is sampled and
//! drops it when none is, so a sampled command's trace gets its batch and transaction
//! at any ratio, and an unsampled batch costs nothing ([`batch_root`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt, LevelFilter};
use tracing_subscriber::layer::Filter;

use crate::propagate::TraceParent;

tokio::task_local! {
    /// Set while an unsampled request (or batch) is polled.
    static UNSAMPLED: ();
}

/// Whether spans are exported at all; set once by [`crate::init`].
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether this process exports traces.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The OpenTelemetry layer's filter: info and above, and nothing made while an
/// unsampled request is polled.
pub(crate) fn layer_filter<S>() -> impl Filter<S> {
    LevelFilter::INFO.and(tracing_subscriber::filter::filter_fn(|_| !in_unsampled()))
}

/// Whether an unsampled request (or batch) is being polled.
pub(crate) fn in_unsampled() -> bool {
    UNSAMPLED.try_with(|_| ()).is_ok()
}

/// Starts `span` (the sampler decides now) and says whether the sampler dropped it: the
/// request is then run in [`scope`]. False when traces are not exported.
pub fn unsampled(span: &tracing::Span) -> bool {
    if !exporting() {
        return false;
    }
    let sc = span.context().span().span_context().clone();
    sc.is_valid() && !sc.is_sampled()
}

/// Runs `work` with the OpenTelemetry layer blind to it when `unsampled`.
pub async fn scope<F: Future>(unsampled: bool, work: F) -> F::Output {
    if unsampled {
        UNSAMPLED.scope((), work).await
    } else {
        work.await
    }
}

/// Makes `f`'s spans invisible to the OpenTelemetry layer when `unsampled`.
pub fn scope_sync<R>(unsampled: bool, f: impl FnOnce() -> R) -> R {
    if unsampled {
        UNSAMPLED.sync_scope((), f)
    } else {
        f()
    }
}

/// The root span of work that serves many commands (a group-commit batch, a relay
/// page), made by `make` and linked to the sampled ones of `traces` (at most
/// `max_links`). When traces are exported and none of them is sampled, it is made unseen
/// and comes with `true`: run the work in [`scope`] then.
pub fn batch_root(
    traces: &[&TraceParent],
    max_links: usize,
    make: impl FnOnce() -> tracing::Span,
) -> (tracing::Span, bool) {
    if !exporting() {
        return (make(), false);
    }
    let sampled: Vec<&&TraceParent> = traces
        .iter()
        .filter(|t| t.sampled())
        .take(max_links)
        .collect();
    if sampled.is_empty() {
        return (scope_sync(true, make), true);
    }
    let span = make();
    for trace in sampled {
        crate::propagate::link_traceparent(&span, trace);
    }
    (span, false)
}

/// A sampler for roots that serve many traces: sampled when one of its links is,
/// dropped when it has links and none is; anything else goes to the configured sampler.
/// Only wraps the parent-based samplers, which follow a caller's decision anyway.
#[derive(Debug, Clone)]
pub(crate) struct FollowLinks(pub(crate) Box<dyn ShouldSample>);

impl ShouldSample for FollowLinks {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let has_parent = parent_context.is_some_and(|cx| cx.span().span_context().is_valid());
        if has_parent || links.is_empty() {
            return self.0.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            );
        }
        let sampled = links.iter().any(|l| l.span_context.is_sampled());
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }
}

/// Whether `OTEL_TRACES_SAMPLER` names a parent-based sampler (the default does).
pub(crate) fn parent_based_from_env() -> bool {
    std::env::var("OTEL_TRACES_SAMPLER")
        .map(|s| s.trim().starts_with("parentbased_"))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};
    use opentelemetry_sdk::trace::Sampler;

    fn link(sampled: bool) -> Link {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        );
        Link::with_context(sc)
    }

    fn decide(sampler: &FollowLinks, links: &[Link]) -> SamplingDecision {
        sampler
            .should_sample(
                None,
                TraceId::from(1u128),
                "batch",
                &SpanKind::Internal,
                &[],
                links,
            )
            .decision
    }

    #[test]
    fn a_root_follows_its_links_and_falls_back_to_the_configured_sampler() {
        let never = FollowLinks(Box::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))));
        let always = FollowLinks(Box::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))));
        assert_eq!(
            decide(&never, &[link(false), link(true)]),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(&always, &[link(false), link(false)]),
            SamplingDecision::Drop
        );
        // No links: the configured sampler decides.
        assert_eq!(decide(&never, &[]), SamplingDecision::Drop);
        assert_eq!(decide(&always, &[]), SamplingDecision::RecordAndSample);
    }

    /// Counts the spans and events a layer behind [`layer_filter`] is shown.
    #[derive(Clone, Default)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap()
                .push(attrs.metadata().name().to_owned());
        }
    }

    #[tokio::test]
    async fn the_layer_sees_nothing_of_an_unsampled_request() {
        use tracing::Instrument;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;

        let seen = Seen::default();
        let subscriber =
            tracing_subscriber::registry().with(seen.clone().with_filter(layer_filter()));
        let _default = tracing::subscriber::set_default(subscriber);
        let request = async {
            let _decide = tracing::info_span!("decide").entered();
            tokio::task::yield_now().await;
            tracing::info_span!("append").in_scope(|| ());
        };
        let root = scope_sync(true, || tracing::info_span!("unsampled"));
        scope(true, request.instrument(root)).await;
        assert!(seen.0.lock().unwrap().is_empty(), "{:?}", seen.0);

        // The same work outside the scope is seen, debug spans aside.
        let root = tracing::info_span!("sampled");
        let request = async {
            tracing::info_span!("decide").in_scope(|| tracing::debug_span!("detail"));
        };
        scope(false, request.instrument(root)).await;
        assert_eq!(*seen.0.lock().unwrap(), ["sampled", "decide"]);
    }

    #[test]
    fn unsampled_scopes_are_seen_only_inside() {
        assert!(!in_unsampled());
        assert!(scope_sync(true, in_unsampled));
        assert!(!in_unsampled());
        assert!(!scope_sync(false, in_unsampled));
    }
}
