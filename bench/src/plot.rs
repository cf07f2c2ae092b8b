//! Plots of the cost curves: one SVG line chart per curve, written next to
//! the JSON, for docs/BENCHMARKS.md to embed.
//!
//! The x axis is categorical (the sizes a curve was measured at, evenly
//! spaced and labelled), since the sizes span orders of magnitude and include
//! zero.

use std::path::Path;

use plotters::prelude::*;

/// A line of a chart: its name and one y per x category.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// One value per category (NaN: not measured).
    pub values: Vec<f64>,
}

/// A chart to draw.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Its title.
    pub title: &'a str,
    /// The x axis's description.
    pub x_desc: &'a str,
    /// The categories' labels, in order.
    pub categories: Vec<String>,
    /// The y axis's description.
    pub y_desc: &'a str,
    /// The lines.
    pub series: Vec<Series>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Draws `chart` as an SVG at `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn svg(path: &Path, chart: &Chart<'_>) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let y_max = chart
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.15;
        let last = chart.categories.len().saturating_sub(1) as f64;
        let mut plot = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.3..last + 0.3, 0.0..y_max)?;
        let labels = chart.categories.clone();
        plot.configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(chart.x_desc)
            .y_desc(chart.y_desc)
            .draw()?;
        for (k, series) in chart.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let points: Vec<(f64, f64)> = series
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64, *v))
                .collect();
            plot.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            plot.draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))?;
        }
        if chart.series.len() > 1 {
            plot.configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("plotting {}: {e}", path.display()))
}
