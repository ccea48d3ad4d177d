//! SVG charts of a load run. plotters is built without its font support: the SVG
//! backend writes `<text>` elements in a generic `sans-serif` family, which any viewer
//! renders with its own fonts, so neither the build nor the machine needs font files.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 560);

/// One named line of points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Throughput against concurrency, both axes of the sweep: x is clients in flight (log
/// scale), y is operations per second.
pub fn throughput(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (min_x, max_x) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if min_x > max_x {
        anyhow::bail!("no sweep points to draw");
    }
    let max_y = max_of(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    // Label the concurrency steps themselves, not just the powers of ten.
    let mut steps: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    steps.sort_by(f64::total_cmp);
    steps.dedup();
    draw(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(80)
            // A log range needs some width even for a single step.
            .build_cartesian_2d(
                ((min_x / 1.5).max(0.5)..max_x * 1.5)
                    .log_scale()
                    .with_key_points(steps),
                0f64..max_y * 1.15,
            )?;
        chart
            .configure_mesh()
            .x_desc("requests in flight (clients)")
            .y_desc("per second")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        legend(&mut chart)
    })
}

/// Latency percentile curves: x is the percentile spaced in "nines" (50 %, 90 %, 99 %,
/// 99.9 % ...), y is milliseconds. Points are (nines, ms) as
/// [`crate::stats::Latencies::quantile_curve`] makes them.
pub fn latency(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let max_nines = max_of(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    if max_nines <= 0.0 {
        anyhow::bail!("no latencies to draw");
    }
    let max_ms = max_of(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let x_end = max_nines.ceil().max(1.0);
    draw(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_end, 0f64..max_ms * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency, ms")
            // One label per nine: 0 %, 90 %, 99 %, 99.9 % ...
            .x_labels(x_end as usize + 1)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)
    })
}

type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

fn legend<X: Ranged, Y: Ranged>(chart: &mut Chart<'_, X, Y>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

fn draw(
    path: &Path,
    plot: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    plot(&root)?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn max_of(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max > 0.0 {
        max
    } else {
        1.0
    }
}

/// `1 - 10^-nines` as a percentage with as many decimals as it needs: 0 -> 0 %,
/// 1 -> 90 %, 3 -> 99.9 %.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.round() as i32 - 2).clamp(0, 6) as usize;
    format!("{percent:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_nines() {
        let labels: Vec<String> = (0..=4).map(|n| percentile_label(f64::from(n))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    /// The SVG backend writes each text on its own line inside `<text>`.
    fn has_text(svg: &str, text: &str) -> bool {
        svg.contains(&format!("\n{text}\n</text>"))
    }

    #[test]
    fn charts_are_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("cart-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |name: &str, k: f64| Series {
            name: name.into(),
            points: [1.0, 4.0, 16.0, 64.0]
                .iter()
                .map(|&x: &f64| (x, k * x.sqrt()))
                .collect(),
        };
        let path = dir.join("t.svg");
        throughput(
            &path,
            "throughput",
            &[line("service", 100.0), line("limit", 150.0)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for label in ["service", "limit", "1", "4", "16", "64"] {
            assert!(has_text(&svg, label), "no {label:?} in {svg}");
        }
        let path = dir.join("l.svg");
        let curve = Series {
            name: "all".into(),
            points: (0..=40)
                .map(|i| (0.3 + f64::from(i) * 0.09, f64::from(i)))
                .collect(),
        };
        latency(&path, "latency", &[curve]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for label in ["0%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(has_text(&svg, label), "no {label:?} in {svg}");
        }
        assert!(throughput(&path, "empty", &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
