//! Charts of a run (SVG): the share of live nodes that know of each crash over time, and
//! mean per-node bandwidth over time.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::world::World;

/// Draws the two panels into `path` (SVG).
pub fn draw(w: &World, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(350);
    let end = w.now().since_epoch().as_secs_f64().max(1.0);

    let mut know = ChartBuilder::on(&top)
        .caption(
            "Share of live nodes that marked a crashed node failed",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..end, 0.0..1.05)?;
    know.configure_mesh()
        .x_desc("virtual seconds")
        .y_desc("share")
        .draw()?;
    for (k, c) in w.observer().crashes.iter().enumerate() {
        let n = c.observers.len().max(1) as f64;
        let start = c.at.since_epoch().as_secs_f64();
        let mut times: Vec<f64> = c
            .failed_at
            .values()
            .map(|t| t.since_epoch().as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        let mut pts = vec![(start, 0.0)];
        for (j, t) in times.iter().enumerate() {
            pts.push((*t, j as f64 / n));
            pts.push((*t, (j + 1) as f64 / n));
        }
        pts.push((end, times.len() as f64 / n));
        know.draw_series(LineSeries::new(pts, Palette99::pick(k).stroke_width(2)))?;
    }

    let samples = w.samples();
    let mut rates: Vec<(f64, f64)> = Vec::new();
    for pair in samples.windows(2) {
        let dt = (pair[1].at - pair[0].at).as_secs_f64();
        if dt > 0.0 && pair[1].up > 0 {
            let per_node = (pair[1].bytes - pair[0].bytes) as f64 / dt / pair[1].up as f64;
            rates.push((pair[1].at.since_epoch().as_secs_f64(), per_node));
        }
    }
    let top_rate = rates.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
    let mut bw = ChartBuilder::on(&bottom)
        .caption(
            "Wire bytes per node per second (QUIC overhead included)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..end, 0.0..top_rate)?;
    bw.configure_mesh()
        .x_desc("virtual seconds")
        .y_desc("B/s")
        .draw()?;
    bw.draw_series(LineSeries::new(rates, BLUE.stroke_width(2)))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
