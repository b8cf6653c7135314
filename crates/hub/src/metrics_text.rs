//! The two text formats `/metrics` speaks: OpenMetrics 1.0 (what `prometheus_client`
//! writes) and the Prometheus text format 0.0.4 that older scrapers ask for with
//! `Accept: text/plain`. The second is derived from the first: no `# EOF`, no `# UNIT`,
//! a counter's `# TYPE`/`# HELP` named like its `_total` sample, `info` as a gauge, and
//! no `_created` samples.

/// Which format a scraper asked for with its `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when the scraper names it (Prometheus 2 does, first) or accepts
    /// anything; the Prometheus text format when it asks for `text/plain` only.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        let types: Vec<&str> = accept
            .split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .collect();
        if types.contains(&"application/openmetrics-text") {
            Format::OpenMetrics
        } else if types.contains(&"text/plain") {
            Format::Prometheus
        } else {
            Format::OpenMetrics
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text as Prometheus text 0.0.4.
pub fn to_prometheus(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP line comes before its TYPE line: learn every family's type
    // first, to name both lines after its samples.
    let mut suffix: std::collections::HashMap<String, &str> = Default::default();
    for l in openmetrics.lines() {
        if let Some((name, kind)) = l.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            match kind {
                "counter" => suffix.insert(name.to_owned(), "_total"),
                "info" => suffix.insert(name.to_owned(), "_info"),
                _ => None,
            };
        }
    }
    for l in openmetrics.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = l
            .strip_prefix("# HELP ")
            .or_else(|| l.strip_prefix("# TYPE "))
        {
            let kind = &l[..7];
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = format!("{name}{}", suffix.get(name).copied().unwrap_or(""));
            let tail = if kind == "# TYPE " && tail == "info" {
                "gauge"
            } else {
                tail
            };
            out.push_str(kind);
            out.push_str(&name);
            out.push(' ');
            out.push_str(tail);
            out.push('\n');
            continue;
        }
        let sample = l.split(['{', ' ']).next().unwrap_or("");
        if sample.ends_with("_created") {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_get_what_they_ask_for() {
        assert_eq!(Format::negotiate(None), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Prometheus
        );
        assert_eq!(Format::negotiate(Some("*/*")), Format::OpenMetrics);
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let om = "# HELP threshold_alerts Alerts raised.\n# TYPE threshold_alerts counter\nthreshold_alerts_total{kind=\"x\"} 2\nthreshold_alerts_created{kind=\"x\"} 1.0\n# HELP threshold_build Build.\n# TYPE threshold_build info\nthreshold_build_info{version=\"1\"} 1\n# UNIT threshold_lag seconds\n# TYPE threshold_lag gauge\nthreshold_lag 3\n# EOF\n";
        assert_eq!(
            to_prometheus(om),
            "# HELP threshold_alerts_total Alerts raised.\n# TYPE threshold_alerts_total counter\nthreshold_alerts_total{kind=\"x\"} 2\n# HELP threshold_build_info Build.\n# TYPE threshold_build_info gauge\nthreshold_build_info{version=\"1\"} 1\n# TYPE threshold_lag gauge\nthreshold_lag 3\n"
        );
    }
}
