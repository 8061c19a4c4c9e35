//! `shaddock-bench plot <run dir>`: one PNG with two panels against offered
//! pushes/s — push p99 (ms, log scale, with the 50 ms pass line) and server
//! CPU per push (µs) — one line per system, from the ramp JSON files that
//! side_by_side.sh wrote (`ramp_series`). Filled markers: the step passed
//! in most runs; hollow: it failed.
//!
//! Text needs a font: plotters draws it with ab_glyph from a TrueType file
//! read at run time (no fontconfig or freetype C library), by default the
//! first of a few Debian fonts (`fonts-dejavu-core` is the one the bench
//! script installs when none is there).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::args::PlotArgs;
use crate::ramp_series::{self, Series};

/// Fonts tried in order when `--font` is not given.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

const SIZE: (u32, u32) = (1000, 900);
const P99_LIMIT_MS: f64 = 50.0;

pub fn run(args: &PlotArgs) -> anyhow::Result<PathBuf> {
    let series = ramp_series::load(&args.dir)?;
    load_font(args.font.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("plot.png"));
    draw(&series, &out).with_context(|| format!("cannot draw {}", out.display()))?;
    for s in &series {
        let passing = s.points.iter().filter(|p| p.pass).map(|p| p.offered);
        let best = passing.fold(0.0, f64::max);
        println!(
            "{}: {} steps, highest passing {:.0} pushes/s",
            s.system,
            s.points.len(),
            best
        );
    }
    println!("wrote {}", out.display());
    Ok(out)
}

/// Registers the TTF as plotters' sans-serif. plotters keeps `&'static`
/// font bytes, so the file's bytes are leaked once per process (a plot is
/// the process's only job).
fn load_font(given: Option<&Path>) -> anyhow::Result<()> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => FONTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .with_context(|| {
                format!(
                    "no TrueType font found (tried {}): install one (apt-get install fonts-dejavu-core) or pass --font <file.ttf>",
                    FONTS.join(", ")
                )
            })?,
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read the font {}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        bail!("{} is not a TrueType/OpenType font", path.display());
    }
    Ok(())
}

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    PALETTE[i % PALETTE.len()]
}

fn draw(series: &[Series], out: &Path) -> anyhow::Result<()> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.offered).fold(1.0, f64::max) * 1.05;
    let positive = |v: f64| (v > 0.0).then_some(v);
    let p99_min = points()
        .filter_map(|p| positive(p.p99_ms))
        .fold(f64::INFINITY, f64::min)
        .min(P99_LIMIT_MS)
        / 2.0;
    let p99_max = points().map(|p| p.p99_ms).fold(P99_LIMIT_MS, f64::max) * 2.0;
    let cpu_max = points().map(|p| p.cpu_us_per_push).fold(1.0, f64::max) * 1.15;

    let root = BitMapBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Push p99 and server CPU per push vs offered load (ramp medians)",
        ("sans-serif", 24),
    )?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    let kx = |v: &f64| format!("{:.0}k", v / 1000.0);

    let mut p99 = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption("push p99 (ms, log scale)", ("sans-serif", 18))
        .build_cartesian_2d(0.0..x_max, (p99_min..p99_max).log_scale())?;
    p99.configure_mesh()
        .x_desc("offered pushes/s")
        .y_desc("p99 ms")
        .x_label_formatter(&kx)
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    p99.draw_series(LineSeries::new(
        [(0.0, P99_LIMIT_MS), (x_max, P99_LIMIT_MS)],
        BLACK.mix(0.4).stroke_width(1),
    ))?
    .label("50 ms: the pass limit")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));

    let mut cpu = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(
            "server CPU per push (µs, all server processes)",
            ("sans-serif", 18),
        )
        .build_cartesian_2d(0.0..x_max, 0.0..cpu_max)?;
    cpu.configure_mesh()
        .x_desc("offered pushes/s")
        .y_desc("µs per push")
        .x_label_formatter(&kx)
        .label_style(("sans-serif", 14))
        .draw()?;

    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let marker = |x: f64, y: f64, pass: bool| {
            Circle::new((x, y), 4, if pass { c.filled() } else { c.stroke_width(2) })
        };
        let shown: Vec<_> = s.points.iter().filter(|p| p.p99_ms > 0.0).collect();
        p99.draw_series(LineSeries::new(
            shown.iter().map(|p| (p.offered, p.p99_ms)),
            c.stroke_width(2),
        ))?
        .label(s.system.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        p99.draw_series(shown.iter().map(|p| marker(p.offered, p.p99_ms, p.pass)))?;
        cpu.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.offered, p.cpu_us_per_push)),
            c.stroke_width(2),
        ))?
        .label(s.system.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        cpu.draw_series(
            s.points
                .iter()
                .map(|p| marker(p.offered, p.cpu_us_per_push, p.pass)),
        )?;
    }
    legend(&mut p99, SeriesLabelPosition::LowerRight)?;
    legend(&mut cpu, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// The series' names in a box at `at`, the same style on both panels.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
}
