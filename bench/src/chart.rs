//! Charts of a run: p99 latency against offered load, one line per system,
//! drawn to PNG (people would rather look than read a table).

use std::ops::Range;
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
    /// The legend's text.
    pub name: String,
    /// (offered load, p99 latency in ms), in the order to join them.
    pub points: Vec<(f64, f64)>,
}

/// What to draw: a title, the axes' descriptions and the lines.
pub struct Chart<'a> {
    /// Above the plot.
    pub title: &'a str,
    /// Below the x (offered load) axis.
    pub x_label: &'a str,
    /// Beside the y (latency, ms) axis.
    pub y_label: &'a str,
    /// One line per system, coloured in order.
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
/// span 100 to 10,000 and latencies 1 ms to seconds (over a narrow span a
/// log axis looks almost linear anyway). Points a log axis cannot show
/// (zero, negative, not finite) are left out.
pub fn draw(path: &Path, chart: &Chart) -> Result<()> {
    load_font()?;
    let series: Vec<(&str, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| {
            let shown = |v: f64| v.is_finite() && v > 0.0;
            let points = s.points.iter().copied();
            let points = points.filter(|&(x, y)| shown(x) && shown(y));
            (s.name.as_str(), points.collect())
        })
        .collect();
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|(_, points)| points) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        anyhow::bail!("nothing to draw for {:?}", chart.title);
    }
    let target_ms = chart.target_ms.filter(|t| t.is_finite() && *t > 0.0);
    if let Some(target) = target_ms {
        y_min = y_min.min(target);
        y_max = y_max.max(target);
    }
    // Some room around the data, so no point sits on the frame.
    let x_range = (x_min / 1.15)..(x_max * 1.15);
    let y_range = (y_min / 1.6)..(y_max * 2.0);
    let (x_ticks, x_grid) = log_ticks(&x_range, 12, &[x_min, x_max]);
    let (y_ticks, y_grid) = log_ticks(&y_range, 14, &[y_min, y_max]);

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(
            x_range
                .clone()
                .log_scale()
                .with_key_points(x_ticks)
                .with_light_points(x_grid),
            y_range
                .log_scale()
                .with_key_points(y_ticks)
                .with_light_points(y_grid),
        )
        .map_err(plot_error)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .bold_line_style(BLACK.mix(0.25))
        .light_line_style(BLACK.mix(0.07))
        .x_label_formatter(&|x| number(*x))
        .y_label_formatter(&|y| number(*y))
        .draw()
        .map_err(plot_error)?;

    // Every line's pixels, to keep the legend off them.
    let mut drawn: Vec<(i32, i32)> = Vec::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line = colour.stroke_width(3);
        ctx.draw_series(LineSeries::new(points.iter().copied(), line))
            .map_err(plot_error)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        ctx.draw_series(points.iter().map(|&p| Circle::new(p, 5, colour.filled())))
            .map_err(plot_error)?;
        let pixels: Vec<_> = points.iter().map(|p| ctx.backend_coord(p)).collect();
        drawn.extend(pixels.first());
        for pair in pixels.windows(2) {
            drawn.extend(along(pair[0], pair[1]));
        }
    }
    let target_label = target_ms.map(|t| format!("p99 target {} ms", number(t)));
    let mut target_pixels = Vec::new();
    if let (Some(target), Some(label)) = (target_ms, &target_label) {
        let ends = [(x_range.start, target), (x_range.end, target)];
        let style = BLACK.mix(0.6).stroke_width(2);
        ctx.draw_series(DashedLineSeries::new(ends, 12, 8, style))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        target_pixels = along(ctx.backend_coord(&ends[0]), ctx.backend_coord(&ends[1]));
    }

    let label_font: TextStyle = ("sans-serif", 16).into_font().into();
    let mut labels = MultiLineText::<(i32, i32), &str>::new((0, 0), &label_font);
    for (name, _) in &series {
        labels.push_line(*name);
    }
    if let Some(label) = &target_label {
        labels.push_line(label.as_str());
    }
    let (w, h) = labels.estimate_dimension().map_err(plot_error)?;
    // As plotters lays it out: a 30 px key, 10 px margins, 5 px from the
    // frame's corner.
    let legend = (w + 30 + 20, h + 20);
    let (xs, ys) = ctx.plotting_area().get_pixel_range();
    let position = [
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerLeft,
    ]
    .into_iter()
    .min_by_key(|corner| {
        let left = match corner {
            SeriesLabelPosition::UpperLeft | SeriesLabelPosition::LowerLeft => xs.start + 5,
            _ => xs.end - legend.0 - 5,
        };
        let top = match corner {
            SeriesLabelPosition::UpperLeft | SeriesLabelPosition::UpperRight => ys.start + 5,
            _ => ys.end - legend.1 - 5,
        };
        // The markers' radius and a little air.
        let covers = |&&(x, y): &&(i32, i32)| {
            (left - 8..left + legend.0 + 8).contains(&x)
                && (top - 8..top + legend.1 + 8).contains(&y)
        };
        // Hiding a line is worse than hiding some of the target's dashes.
        1000 * drawn.iter().filter(covers).count() + target_pixels.iter().filter(covers).count()
    })
    .unwrap_or(SeriesLabelPosition::UpperLeft);
    ctx.configure_series_labels()
        .position(position)
        .label_font(label_font.clone())
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// The axis's labelled ticks: 1, 2 and 5 times the powers of ten inside
/// `range` (only the powers when that would make more than `max`; 1 to 9
/// times them when fewer than three; `fallback` when even those miss), and
/// 1 to 9 times them for the faint grid.
fn log_ticks(range: &Range<f64>, max: usize, fallback: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let decades = (range.start.log10().floor() as i32)..=(range.end.log10().ceil() as i32);
    let at = |multiples: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|e| multiples.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| range.contains(v))
            .collect()
    };
    let grid = at(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let mut ticks = at(&[1.0, 2.0, 5.0]);
    if ticks.len() > max {
        ticks = at(&[1.0]);
    } else if ticks.len() < 3 {
        ticks.clone_from(&grid);
    }
    if ticks.len() < 2 {
        ticks = fallback.to_vec();
        ticks.dedup();
    }
    (ticks, grid)
}

/// Pixels every few steps along a straight segment, both ends included.
fn along(from: (i32, i32), to: (i32, i32)) -> Vec<(i32, i32)> {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let steps = (dx.abs().max(dy.abs()) / 3).max(1);
    (0..=steps)
        .map(|i| (from.0 + dx * i / steps, from.1 + dy * i / steps))
        .collect()
}

/// A tick label: whole numbers with thousands separators, small ones with
/// the decimals they need.
fn number(v: f64) -> String {
    if v < 1.0 {
        return format!("{}", (v * 1000.0).round() / 1000.0);
    }
    let digits = format!("{:.0}", v.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    fn ticks_are_one_two_five_within_the_range() {
        let (ticks, grid) = log_ticks(&(42.0..600.0), 12, &[50.0, 500.0]);
        assert_eq!(ticks, [50.0, 100.0, 200.0, 500.0]);
        assert_eq!(grid.first(), Some(&50.0));
        assert_eq!(grid.last(), Some(&500.0));
        // Too many 1-2-5 ticks: only the powers of ten.
        let (ticks, _) = log_ticks(&(0.5..120_000.0), 14, &[]);
        assert_eq!(ticks, [1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0]);
        // No tick of either kind in range: the data.
        let (ticks, _) = log_ticks(&(260.0..345.0), 12, &[300.0, 300.0]);
        assert_eq!(ticks, [300.0]);
    }

    #[test]
    fn tick_labels_read_as_numbers() {
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.30000000000000004), "0.3");
        assert_eq!(number(50.0), "50");
        assert_eq!(number(1000.0), "1,000");
        assert_eq!(number(20_000.0), "20,000");
        assert_eq!(number(1_234_567.0), "1,234,567");
    }

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
