//! One declaration point per metric: [`metrics!`](crate::metrics!) declares a service's metrics
//! struct, field by field, with the metric's name, labels and buckets beside its doc comment,
//! which is also its help text; the generated `register` creates and registers them all. A
//! metric cannot be declared without being registered, nor registered under another help.

use prometheus::core::Collector;
use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// How [`metrics!`](crate::metrics!) builds one metric.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// The namespace (`""`: none).
    pub namespace: &'a str,
    pub name: &'a str,
    /// From the field's doc comment (each line of it, joined).
    pub help: &'a str,
    pub labels: &'a [&'a str],
    /// Histograms only; `None`: Prometheus' default buckets.
    pub buckets: Option<&'a [f64]>,
}

impl Spec<'_> {
    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help.trim()).namespace(self.namespace)
    }

    fn histogram_opts(&self) -> HistogramOpts {
        let opts = HistogramOpts::new(self.name, self.help.trim()).namespace(self.namespace);
        match self.buckets {
            Some(buckets) => opts.buckets(buckets.to_vec()),
            None => opts,
        }
    }

    /// A metric without labels was given some: a declaration slip, refused at start.
    fn unlabelled(&self) -> prometheus::Result<()> {
        if self.labels.is_empty() {
            Ok(())
        } else {
            Err(prometheus::Error::Msg(format!(
                "{}: labels on a metric type without any",
                self.name
            )))
        }
    }
}

/// A metric type [`metrics!`](crate::metrics!) can declare.
pub trait Declare: Collector + Clone + Sized + 'static {
    /// Builds the metric of `spec` (not registered yet).
    fn declare(spec: &Spec<'_>) -> prometheus::Result<Self>;

    /// Builds and registers it.
    fn register(spec: &Spec<'_>, registry: &Registry) -> prometheus::Result<Self> {
        let metric = Self::declare(spec)?;
        registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }
}

macro_rules! plain {
    ($($ty:ty),*) => {$(
        impl Declare for $ty {
            fn declare(spec: &Spec<'_>) -> prometheus::Result<Self> {
                spec.unlabelled()?;
                Self::with_opts(spec.opts())
            }
        }
    )*};
}
plain!(IntCounter, Counter, IntGauge, Gauge);

macro_rules! labelled {
    ($($ty:ty),*) => {$(
        impl Declare for $ty {
            fn declare(spec: &Spec<'_>) -> prometheus::Result<Self> {
                Self::new(spec.opts(), spec.labels)
            }
        }
    )*};
}
labelled!(IntCounterVec, CounterVec, IntGaugeVec, GaugeVec);

impl Declare for Histogram {
    fn declare(spec: &Spec<'_>) -> prometheus::Result<Self> {
        spec.unlabelled()?;
        Self::with_opts(spec.histogram_opts())
    }
}

impl Declare for HistogramVec {
    fn declare(spec: &Spec<'_>) -> prometheus::Result<Self> {
        Self::new(spec.histogram_opts(), spec.labels)
    }
}

/// Declares a metrics struct: each field's doc comment is its help text, and after its type
/// come the metric's name and, where it has them, its labels (`labels ["a", "b"]`) and buckets
/// (`buckets &[…]`, any `&[f64]` expression). Generates the struct
/// (`Debug`, `Clone`) and `fn register(registry) -> prometheus::Result<Self>`.
///
/// ```
/// use prometheus::{Histogram, IntCounter, IntCounterVec};
///
/// fleet::metrics! {
///     /// Metrics in the `demo` namespace.
///     pub struct DemoMetrics in "demo" {
///         /// Things done.
///         pub done: IntCounter = "done_total",
///         /// Things that failed, by why.
///         pub failed: IntCounterVec = "failed_total" labels ["reason"],
///         /// How long a thing takes.
///         pub took: Histogram = "took_seconds" buckets &[0.1, 1.0],
///     }
/// }
///
/// let registry = prometheus::Registry::new();
/// let m = DemoMetrics::register(&registry).unwrap();
/// m.done.inc();
/// let help = registry.gather()[0].help().to_string();
/// assert_eq!(help, "Things done.");
/// ```
#[macro_export]
macro_rules! metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $namespace:literal {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident: $ty:ty = $metric:literal
                    $(labels [$($label:literal),* $(,)?])?
                    $(buckets $buckets:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $fvis $field: $ty,
            )*
        }

        impl $name {
            /// Creates every metric and registers it in `registry`.
            $vis fn register(registry: &::prometheus::Registry) -> ::prometheus::Result<Self> {
                Ok(Self {
                    $(
                        $field: <$ty as $crate::metrics::Declare>::register(
                            &$crate::metrics::Spec {
                                namespace: $namespace,
                                name: $metric,
                                help: concat!($($doc),*),
                                labels: &[$($($label),*)?],
                                buckets: {
                                    let buckets: Option<&[f64]> = None;
                                    $(let buckets: Option<&[f64]> = Some($buckets);)?
                                    buckets
                                },
                            },
                            registry,
                        )?,
                    )*
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use prometheus::{IntCounter, IntGauge};

    crate::metrics! {
        #[allow(dead_code, reason = "never built: its declaration is refused")]
        struct Two in "t" {
            /// First line,
            /// second line.
            a: IntCounter = "a_total",
            /// Plain.
            b: IntGauge = "b" labels ["x"],
        }
    }

    #[test]
    fn labels_on_a_plain_metric_are_refused() {
        let err = Two::register(&prometheus::Registry::new()).unwrap_err();
        assert!(err.to_string().contains("b: labels"), "{err}");
    }

    crate::metrics! {
        struct One in "t" {
            /// First line,
            /// second line.
            a: IntCounter = "a_total",
        }
    }

    #[test]
    fn a_multi_line_doc_is_one_help_line() {
        let registry = prometheus::Registry::new();
        One::register(&registry).unwrap().a.inc();
        let family = &registry.gather()[0];
        assert_eq!(family.name(), "t_a_total");
        assert_eq!(family.help(), "First line, second line.");
    }
}
