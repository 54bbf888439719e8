//! Charts of a run: p99 latency against offered load, one line per system,
//! drawn to PNG (people would rather look than read a table).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// Where Debian's `fonts-dejavu-core` puts its sans-serif face.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const SIZE: (u32, u32) = (1200, 700);

/// One system's line: (offered load, p99 in ms) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// A horizontal line at the target latency, if the workload has one.
    pub target_ms: Option<f64>,
}

/// Line colours, one per series in order (colour-blind-safe Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(230, 159, 0),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
];

/// Draws `chart` into a PNG at `path`: both axes logarithmic, since loads
/// span 100 to 10,000 and latencies 1 ms to seconds.
pub fn draw(path: &Path, chart: &Chart) -> Result<()> {
    load_font()?;
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        anyhow::bail!("nothing to draw for {:?}", chart.title);
    }
    if let Some(target) = chart.target_ms {
        y_min = y_min.min(target);
        y_max = y_max.max(target);
    }
    // Some room around the data, so no point sits on the frame.
    let (x_range, y_range) = (
        (x_min / 1.2)..(x_max * 1.2),
        (y_min / 2.0).max(0.01)..(y_max * 2.0),
    );

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(plot_error)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(plot_error)?;
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line = colour.stroke_width(3);
        ctx.draw_series(LineSeries::new(series.points.iter().copied(), line))
            .map_err(plot_error)?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        ctx.draw_series(
            series
                .points
                .iter()
                .map(|&p| Circle::new(p, 5, colour.filled())),
        )
        .map_err(plot_error)?;
    }
    if let Some(target) = chart.target_ms {
        let style = BLACK.mix(0.6).stroke_width(2);
        ctx.draw_series(DashedLineSeries::new(
            [(x_min / 1.2, target), (x_max * 1.2, target)],
            12,
            8,
            style,
        ))
        .map_err(plot_error)?
        .label(format!("p99 target {target} ms"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// Registers the sans-serif face once per process (plotters keeps it for
/// the program's lifetime, hence the leak).
fn load_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT)
                .with_context(|| format!("reading {FONT} (Debian package fonts-dejavu-core)"))
                .map_err(|e| format!("{e:#}"))?;
            register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .map_err(|_| format!("{FONT} is not a font plotters can use"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_of_the_promised_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        let series = [
            Series {
                name: "one".into(),
                points: vec![(100.0, 2.0), (1000.0, 30.0), (5000.0, 3000.0)],
            },
            Series {
                name: "two".into(),
                points: vec![(100.0, 1.0), (1000.0, 4.0)],
            },
        ];
        let chart = Chart {
            title: "test",
            x_label: "offered messages/s",
            y_label: "p99 ms",
            series: &series,
            target_ms: Some(50.0),
        };
        draw(&path, &chart).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after its type.
        assert_eq!(&png[12..16], b"IHDR");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), SIZE);
    }
}
