//! SVG plots from the bench's records: latency distributions of the open
//! loop per store (the median seed of each setting), and the cost–latency
//! frontier (p99 against PUTs per second, medians over the seeds) of
//! tidemark's PUT budgets and SlateDB's flush intervals.

use std::path::Path;

use plotters::prelude::*;

use crate::report::groups;
use crate::{Record, StoreKind};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// "Nines" of a quantile: 0.9 is 1, 0.99 is 2, 0.999 is 3.
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

const COLORS: [RGBColor; 6] = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];

/// Latency against its quantile for every open-loop record on `store` at
/// `rate`, one line per engine setting.
pub fn latency(records: &[Record], store: StoreKind, rate: u64, path: &Path) -> Res<bool> {
    let plain: Vec<Record> = records
        .iter()
        .filter(|r| r.workload == "open-loop" && crate::report::plain(r, store) && r.rate == Some(rate) && r.percentiles.is_some())
        .cloned()
        .collect();
    let lines: Vec<&Record> = groups(&plain).iter().map(|g| g.median_record()).collect();
    if lines.is_empty() {
        return Ok(false);
    }
    let max_ms = lines.iter().flat_map(|r| r.percentiles.iter().flatten().map(|p| p[1])).fold(1.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("durable write latency, open loop {rate}/s, store {store:?}"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((10f64..max_ms).log_scale(), 0f64..4f64)?;
    chart
        .configure_mesh()
        .x_desc("latency from scheduled arrival (ms, log scale)")
        .y_desc("quantile (nines: 1 = p90, 2 = p99, 3 = p999)")
        .draw()?;
    for (i, r) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = r.percentiles.iter().flatten().map(|p| (p[1].max(10.0), nines(p[0]))).collect();
        let label = format!("{} ({})", r.engine, r.setting);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(true)
}

/// p99 against PUTs per second of the `frontier` records on `store`, one
/// curve per engine, each point the median over its seeds.
pub fn frontier(records: &[Record], store: StoreKind, path: &Path) -> Res<bool> {
    let points: Vec<Record> = records.iter().filter(|r| r.workload == "frontier" && r.store == store && r.p99_ms.is_some()).cloned().collect();
    if points.is_empty() {
        return Ok(false);
    }
    let medians: Vec<(String, f64, f64)> = groups(&points)
        .iter()
        .filter_map(|g| Some((g.first().engine.clone(), g.median(|r| Some(r.puts_per_sec))?, g.median(|r| r.p99_ms)?)))
        .collect();
    let max_x = medians.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let max_y = medians.iter().map(|p| p.2).fold(1.0, f64::max) * 1.2;
    let min_y = medians.iter().map(|p| p.2).fold(f64::MAX, f64::min) * 0.8;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("cost against tail latency, open loop {}/s, store {store:?}", points[0].rate.unwrap_or(0)), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, (min_y..max_y).log_scale())?;
    chart.configure_mesh().x_desc("PUTs per second (cost)").y_desc("p99 latency (ms, log scale)").draw()?;
    let mut engines: Vec<&str> = medians.iter().map(|p| p.0.as_str()).collect();
    engines.dedup();
    for (i, engine) in engines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut curve: Vec<(f64, f64)> = medians.iter().filter(|p| p.0 == *engine).map(|p| (p.1, p.2)).collect();
        curve.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(curve.clone(), color.stroke_width(2)))?
            .label(engine.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(curve.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(true)
}
