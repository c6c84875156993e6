//! The chart: cellvisor vs native ns per operation as an SVG (target/bench/chart.svg).
use std::fmt::Write as _;

use super::OPS;
use super::parse::number;
use super::report::Report;

impl Report {
    /// Horizontal grouped bars, log scale, cellvisor vs native ns/op under icount and TCG.
    pub(super) fn svg(&self) -> String {
        let ops: Vec<&str> = OPS
            .iter()
            .map(|(op, _)| *op)
            .filter(|op| *op != "null")
            .collect();
        let series = [
            ("icount", "cellvisor", "#c0392b"),
            ("icount", "native", "#2980b9"),
            ("tcg", "cellvisor", "#e6a19a"),
            ("tcg", "native", "#9cc3e0"),
        ];
        let bar = 9.0;
        let group = bar * series.len() as f64 + 12.0;
        let left = 110.0;
        let width = 560.0;
        let top = 40.0;
        let height = top + group * ops.len() as f64 + 40.0;
        let (low, high) = (0.0_f64, 6.0_f64); // 1 ns .. 1 ms, log10
        let x =
            |ns: f64| left + width * ((ns.max(1.0).log10() - low) / (high - low)).clamp(0.0, 1.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n",
            left + width + 30.0
        );
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"16\" font-size=\"13\">cellvisor vs native QEMU: ns per operation (log scale, shorter is better)</text>"
        );
        for decade in 0..=6 {
            let position = x(10f64.powi(decade));
            let label =
                ["1 ns", "10 ns", "100 ns", "1 µs", "10 µs", "100 µs", "1 ms"][decade as usize];
            let _ = writeln!(
                svg,
                "<line x1=\"{position}\" y1=\"{}\" x2=\"{position}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{position}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                top - 6.0,
                height - 30.0,
                height - 16.0
            );
        }
        for (index, op) in ops.iter().enumerate() {
            let y0 = top + group * index as f64;
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{op}</text>",
                left - 6.0,
                y0 + group / 2.0
            );
            for (row, (mode, env, colour)) in series.iter().enumerate() {
                let Some(ns) = number(self.op(mode, env, op), "ns_per_op") else {
                    continue;
                };
                let y = y0 + bar * row as f64;
                let _ = writeln!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"><title>{op} {mode} {env}: {ns} ns</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"8\">{ns:.0}</text>",
                    (x(ns) - left).max(0.5),
                    bar - 1.0,
                    x(ns) + 3.0,
                    y + bar - 2.0
                );
            }
        }
        for (row, (mode, env, colour)) in series.iter().enumerate() {
            let lx = left + 140.0 * row as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{lx}\" y=\"24\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"33\">{env} ({mode})</text>",
                lx + 14.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}
