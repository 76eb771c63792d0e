//! What the examples share: data sets, pictures, progress bars. Not part of the
//! library: each example includes this module with `mod common;`.
#![allow(dead_code)] // each example uses a different part of this module

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};
use nnc::rand::{Rng, RngExt};
use plotters::prelude::*;
use std::error::Error;
use std::io::Read;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Where examples write their pictures: `target/nnc-examples/`.
pub fn output_dir() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("nnc-examples");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `work`, returning its result and the seconds it took.
pub fn timed<T>(work: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = std::time::Instant::now();
    let result = work()?;
    Ok((result, start.elapsed().as_secs_f64()))
}

/// A progress bar showing the step and the current loss (hidden in tests, where it
/// would draw over the test harness's output).
pub fn progress(steps: u64, what: &str) -> ProgressBar {
    if cfg!(test) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// The lecture's spiral: `classes` arms of `points` points each, in 2-D. For class j
/// and i in 0..points: r = i / (points - 1), t = 4j + 4 r + 0.2 * noise, point
/// (r sin t, r cos t).
pub fn spiral<R: Rng + ?Sized>(
    points: usize,
    classes: usize,
    rng: &mut R,
) -> (Array2<f64>, Array1<usize>) {
    let normal = nnc::rand_distr::Normal::new(0.0, 1.0).expect("valid normal");
    let n = points * classes;
    let mut x = Array2::zeros((n, 2));
    let mut labels = Array1::zeros(n);
    for j in 0..classes {
        for i in 0..points {
            let row = j * points + i;
            let r = i as f64 / (points - 1).max(1) as f64;
            let noise: f64 = nnc::rand_distr::Distribution::sample(&normal, rng);
            let t = 4.0 * j as f64 + 4.0 * r + 0.2 * noise;
            x[[row, 0]] = r * t.sin();
            x[[row, 1]] = r * t.cos();
            labels[row] = j;
        }
    }
    (x, labels)
}

/// The 8x8 digits shipped in `data/digits.csv.gz` (see data/README.md): pixels 0..16
/// as floats, and labels.
pub fn digits() -> Result<(Array2<f64>, Array1<usize>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("digits.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path)?).read_to_string(&mut text)?;
    let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut x = Array2::zeros((rows.len(), 64));
    let mut labels = Array1::zeros(rows.len());
    for (i, line) in rows.iter().enumerate() {
        let values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()?;
        if values.len() != 65 {
            return Err(format!(
                "{}: row {} has {} values, expected 65",
                path.display(),
                i + 1,
                values.len()
            )
            .into());
        }
        for j in 0..64 {
            x[[i, j]] = values[j];
        }
        labels[i] = values[64] as usize;
    }
    Ok((x, labels))
}

/// A shuffled split: `test_fraction` of the rows for testing.
pub fn split<R: Rng + ?Sized>(
    n: usize,
    test_fraction: f64,
    rng: &mut R,
) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let test = ((n as f64) * test_fraction).round() as usize;
    let test_rows = order[..test].to_vec();
    let train_rows = order[test..].to_vec();
    (train_rows, test_rows)
}

/// One named series of (x, y) points for a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart of several series (log-scale y when `log_y`), as a PNG.
pub fn line_chart(
    path: &std::path::Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<()> {
    let axes = Axes {
        x_label,
        y_label,
        log_x: false,
        log_y,
    };
    line_chart_with(path, title, &axes, series)
}

/// Labels and scales of a [`line_chart_with`].
pub struct Axes<'a> {
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
}

/// A tick label: at most three significant digits without trailing zeros (`0.25`,
/// `1`, `2500`), powers of ten for very large or small values (`1e-5`, `2.5e6`), and
/// never `-0`.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    let text = if a != 0.0 && !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{exponent}", trim_decimals(mantissa))
    } else {
        // Decimals for three significant digits (none at 100 and above, or for 0).
        let magnitude = if a == 0.0 {
            2
        } else {
            a.log10().floor() as i32
        };
        let decimals = (2 - magnitude).max(0) as usize;
        trim_decimals(&format!("{v:.decimals$}")).to_string()
    };
    if text == "-0" { "0".into() } else { text }
}

/// `"1.50"` as `"1.5"`, `"2.00"` as `"2"`; text without a decimal point unchanged.
fn trim_decimals(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The tick labels of an axis spanning `span` (on a log scale when `log`): [`tick`],
/// and on a linear axis, what is zero but for rounding in the tick positions (plotters
/// adds up its steps: `-2.2e-16`) shown as `0`.
pub fn tick_labels(log: bool, span: f64) -> impl Fn(&f64) -> String {
    move |&v| {
        tick(if !log && v.abs() < 1e-9 * span {
            0.0
        } else {
            v
        })
    }
}

/// The labelled ticks of a log-scale axis showing `lo..=hi` (`0 < lo < hi`): the
/// coarsest of powers of ten (every second, third, ... when there are more than
/// ten), 1, 2 and 5 times them, and 1 to 9 times them that gives at least four; else
/// round linear steps (a range within a factor of about two). The first tick is at or
/// below `lo`: the axis starts there, so the smallest value (a loss curve's last) is
/// read against a labelled line.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = multiples_of_powers(lo, hi, &[1.0]);
    if decades.len() >= 4 {
        let every = decades.len().div_ceil(10);
        return decades.into_iter().step_by(every).collect();
    }
    for mantissas in [&[1.0, 2.0, 5.0][..], &ONE_TO_NINE] {
        let ticks = multiples_of_powers(lo, hi, mantissas);
        if ticks.len() >= 4 {
            return ticks;
        }
    }
    linear_ticks(lo, hi)
}

const ONE_TO_NINE: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

/// `m * 10^e` for every `m` of `mantissas` and every power of ten, in increasing
/// order, from the last at or below `lo` to the last at or below `hi`.
fn multiples_of_powers(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    // A relative tolerance, so that 3 * 10^-1 = 0.30000000000000004 counts as 0.3.
    let (lo, hi) = (lo * (1.0 + 1e-12), hi * (1.0 + 1e-12));
    let (first, last) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32);
    let all: Vec<f64> = (first..=last)
        .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
        .take_while(|&v| v <= hi)
        .collect();
    let start = all.iter().rposition(|&v| v <= lo).unwrap_or(0);
    all[start..].to_vec()
}

/// Multiples of a round step (1, 2 or 5 times a power of ten), about five of them,
/// from the last at or below `lo` to the last at or below `hi`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let rough = (hi - lo) / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= rough)
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor() as i64;
    (first..)
        .map(|i| i as f64 * step)
        .take_while(|&v| v <= hi)
        .collect()
}

/// A log-scale axis showing `lo..hi`, from its first tick ([`log_ticks`]), with a grid
/// line at 1 to 9 times every power of ten. (plotters' own ticks on a log axis are the
/// powers of ten alone: one label, or none, for a loss that falls less than tenfold.)
fn log_axis(lo: f64, hi: f64) -> plotters::coord::combinators::WithKeyPoints<LogCoord<f64>> {
    let ticks = log_ticks(lo, hi);
    let start = ticks.first().map_or(lo, |&t| t.min(lo));
    let grid = multiples_of_powers(start, hi, &ONE_TO_NINE);
    (start..hi)
        .log_scale()
        .with_key_points(ticks)
        .with_light_points(grid)
}

/// A line chart of several series, either axis on a log scale (points that cannot be
/// shown there, at or below zero, are left out), as a PNG.
pub fn line_chart_with(
    path: &std::path::Path,
    title: &str,
    axes: &Axes<'_>,
    series: &[Series],
) -> Result<()> {
    let (log_x, log_y) = (axes.log_x, axes.log_y);
    let shown = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0)
    };
    let kept: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.iter().copied().filter(shown).collect(),
        })
        .collect();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1, y0, y1) = bounds(&kept, log_y)?;
    let colours = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK];
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let (x_tick, y_tick) = (tick_labels(log_x, x1 - x0), tick_labels(log_y, y1 - y0));
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(axes.x_label)
                .y_desc(axes.y_label)
                .x_label_formatter(&x_tick)
                .y_label_formatter(&y_tick)
                .draw()?;
            for (i, s) in kept.iter().enumerate() {
                let colour = colours[i % colours.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        colour.stroke_width(2),
                    ))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            // Loss curves fall from the upper left: the lower left is free.
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    match (log_x, log_y) {
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?),
        (false, true) => draw!(builder.build_cartesian_2d(x0..x1, log_axis(y0, y1))?),
        (true, false) => draw!(builder.build_cartesian_2d(log_axis(x0, x1), y0..y1)?),
        (true, true) => draw!(builder.build_cartesian_2d(log_axis(x0, x1), log_axis(y0, y1))?),
    }
    root.present()?;
    Ok(())
}

/// Histograms of several samples side by side (one panel each), as a PNG.
pub fn histograms(
    path: &std::path::Path,
    title: &str,
    panels: &[(String, Vec<f64>)],
    range: (f64, f64),
) -> Result<()> {
    histogram_grid(path, title, panels, range, panels.len())
}

/// Histograms of several samples in a grid of `columns` columns (one panel each), as a
/// PNG. Values outside `range` are left out; its upper end counts in the last bin.
pub fn histogram_grid(
    path: &std::path::Path,
    title: &str,
    panels: &[(String, Vec<f64>)],
    range: (f64, f64),
    columns: usize,
) -> Result<()> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (260 * columns as u32, 280 * rows as u32 + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((rows, columns));
    let bins = 40usize;
    for (area, (name, values)) in areas.iter().zip(panels) {
        let width_of_bin = (range.1 - range.0) / bins as f64;
        let mut counts = vec![0u32; bins];
        for v in values {
            if (range.0..=range.1).contains(v) {
                let b = ((v - range.0) / width_of_bin).floor() as usize;
                counts[b.min(bins - 1)] += 1;
            }
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 16))
            .margin(6)
            .x_label_area_size(24)
            .y_label_area_size(36)
            .build_cartesian_2d(range.0..range.1, 0u32..top)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(4)
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
            let x0 = range.0 + i as f64 * width_of_bin;
            Rectangle::new([(x0, 0), (x0 + width_of_bin, *c)], BLUE.mix(0.6).filled())
        }))?;
    }
    root.present()?;
    Ok(())
}

/// A classifier's decision regions over the plane, with the data points on top.
pub fn decision_boundary(
    path: &std::path::Path,
    title: &str,
    x: &Array2<f64>,
    labels: &Array1<usize>,
    mut classify: impl FnMut(&Array2<f64>) -> Result<Vec<usize>>,
) -> Result<()> {
    let (lo, hi) = (-1.1, 1.1);
    let grid = 200usize;
    let mut points = Array2::zeros((grid * grid, 2));
    for i in 0..grid {
        for j in 0..grid {
            points[[i * grid + j, 0]] = lo + (hi - lo) * j as f64 / (grid - 1) as f64;
            points[[i * grid + j, 1]] = lo + (hi - lo) * i as f64 / (grid - 1) as f64;
        }
    }
    let predicted = classify(&points)?;
    let root = BitMapBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(lo..hi, lo..hi)?;
    let coordinate = tick_labels(false, hi - lo);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_label_formatter(&coordinate)
        .y_label_formatter(&coordinate)
        .draw()?;
    let light = [
        RGBColor(255, 210, 210),
        RGBColor(210, 255, 210),
        RGBColor(210, 210, 255),
        RGBColor(255, 255, 200),
    ];
    let dark = [
        RGBColor(200, 0, 0),
        RGBColor(0, 140, 0),
        RGBColor(0, 0, 200),
        RGBColor(160, 160, 0),
    ];
    let cell = (hi - lo) / (grid - 1) as f64;
    chart.draw_series(predicted.iter().enumerate().map(|(k, c)| {
        let (px, py) = (points[[k, 0]], points[[k, 1]]);
        Rectangle::new(
            [
                (px - cell / 2.0, py - cell / 2.0),
                (px + cell / 2.0, py + cell / 2.0),
            ],
            light[c % 4].filled(),
        )
    }))?;
    chart.draw_series(
        x.rows()
            .into_iter()
            .zip(labels)
            .map(|(p, c)| Circle::new((p[0], p[1]), 3, dark[c % 4].filled())),
    )?;
    root.present()?;
    Ok(())
}

/// Fraction of `predicted` equal to `labels` (0 for no samples).
pub fn accuracy(predicted: &[usize], labels: &[usize]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len().max(1) as f64
}

/// A `rows x cols` matrix of standard normal draws.
pub fn standard_normal<R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || {
        nnc::rand_distr::Distribution::sample(&nnc::rand_distr::StandardNormal, rng)
    })
}

/// How a numerical derivative is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difference {
    /// `(f(x + h) - f(x - h)) / 2h`: error O(h^2).
    Central,
    /// `(f(x + h) - f(x)) / h`: error O(h).
    OneSided,
}

/// Gradients by parameter name, in declaration order.
pub type Gradients = Vec<(&'static str, ndarray::ArrayD<f64>)>;

/// Numerical gradients of `M::loss` with respect to every parameter, by nudging one
/// element at a time by `h` (in `f64`, the model's own type). Returns one array per
/// parameter, by name in declaration order, and how many times the loss was evaluated.
pub fn numerical_gradient<M: nnc::Model<Float = f64>>(
    params: &M::Params,
    inputs: &nnc::runtime::NamedInputs<f64>,
    h: f64,
    difference: Difference,
) -> Result<(Gradients, usize)> {
    use nnc::runtime::TensorSet;
    let bound = M::bind_inputs(inputs)?;
    let mut ws = M::workspace(&bound);
    let mut params = params.clone();
    let mut evaluations = 0;
    let mut loss = |params: &M::Params, ws: &mut M::Workspace| -> Result<f64> {
        evaluations += 1;
        Ok(M::loss(params, &bound, ws)?)
    };
    let at_x = match difference {
        Difference::Central => 0.0,
        Difference::OneSided => loss(&params, &mut ws)?,
    };
    let shapes: Vec<(&'static str, Vec<usize>)> = params
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.shape().to_vec()))
        .collect();
    let mut out = Vec::with_capacity(shapes.len());
    for (t, (name, shape)) in shapes.into_iter().enumerate() {
        let mut grad = ndarray::ArrayD::zeros(shape);
        let len = grad.len();
        for (k, g) in (0..len).zip(grad.iter_mut()) {
            let x = set_element(&mut params, t, k, None)?;
            set_element(&mut params, t, k, Some(x + h))?;
            let plus = loss(&params, &mut ws)?;
            *g = match difference {
                Difference::Central => {
                    set_element(&mut params, t, k, Some(x - h))?;
                    (plus - loss(&params, &mut ws)?) / (2.0 * h)
                }
                Difference::OneSided => (plus - at_x) / h,
            };
            set_element(&mut params, t, k, Some(x))?;
        }
        out.push((name, grad));
    }
    Ok((out, evaluations))
}

/// Element `k` (row-major) of parameter `t`: returns it, and overwrites it with `value`.
fn set_element<P: nnc::runtime::TensorSet<f64>>(
    params: &mut P,
    t: usize,
    k: usize,
    value: Option<f64>,
) -> Result<f64> {
    let mut tensors = params.tensors_mut();
    let (name, view) = tensors.get_mut(t).ok_or("no such parameter")?;
    let slice = view
        .as_slice_mut()
        .ok_or_else(|| format!("parameter `{name}` is not in row-major order"))?;
    let old = slice[k];
    if let Some(v) = value {
        slice[k] = v;
    }
    Ok(old)
}

/// The smallest box holding every plottable point of `series` (positive y only when
/// `log_y`), widened where it is flat.
fn bounds(series: &[Series], log_y: bool) -> Result<(f64, f64, f64, f64)> {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if y.is_finite() && (!log_y || y > 0.0) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if !(x0.is_finite() && y0.is_finite()) {
        return Err("nothing to plot".into());
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    Ok((x0, x1, y0, y1))
}

/// One small chart of a [`line_panels`] grid.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Several line charts in a grid of `columns` columns (linear axes), as one PNG.
pub fn line_panels(
    path: &std::path::Path,
    title: &str,
    panels: &[Panel],
    columns: usize,
) -> Result<()> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let root = BitMapBackend::new(path, (340 * columns as u32, 300 * rows as u32 + 40))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let colours = [&BLUE, &RED, &GREEN, &MAGENTA];
    for (area, panel) in root.split_evenly((rows, columns)).iter().zip(panels) {
        let (x0, x1, y0, y1) = bounds(&panel.series, false)?;
        let pad = 0.05 * (y1 - y0);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&tick_labels(false, x1 - x0))
            .y_label_formatter(&tick_labels(false, y1 - y0 + 2.0 * pad))
            .draw()?;
        for (i, s) in panel.series.iter().enumerate() {
            let colour = colours[i % colours.len()];
            let points = s.points.iter().copied().filter(|(_, y)| y.is_finite());
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
