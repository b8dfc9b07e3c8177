//! The bench's charts as SVG text (`quantum`'s bars, `curve`'s lines): a white page and
//! the few shapes they draw, plus the axes' scales. Coordinates are in pixels from the
//! top left; colours and extra attributes are passed through as written.

use std::fmt::Write as _;

/// An SVG document being written.
#[derive(Debug)]
pub struct Svg {
    out: String,
}

impl Svg {
    /// A `width` × `height` page with a white background (sans-serif, 13 px text).
    pub fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        Self { out }
    }

    /// Text at (`x`, `y`) with extra attributes (`fill`, `text-anchor`, `font-size`, …).
    pub fn text(&mut self, x: f64, y: f64, attrs: &str, text: &str) {
        let (x, y) = (px(x), px(y));
        let _ = writeln!(
            self.out,
            r#"<text x="{x}" y="{y}" {attrs}>{}</text>"#,
            escape(text)
        );
    }

    /// A bold 16 px title.
    pub fn title(&mut self, x: f64, y: f64, text: &str) {
        self.text(x, y, r#"font-size="16" font-weight="bold""#, text);
    }

    /// A line with extra attributes (`stroke`, `stroke-dasharray`, …).
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let (x1, y1, x2, y2) = (px(x1), px(y1), px(x2), px(y2));
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {attrs}/>"#
        );
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, fill: &str) {
        let (x, y, width, height) = (px(x), px(y), px(width), px(height));
        let _ = writeln!(
            self.out,
            r#"<rect x="{x}" y="{y}" width="{width}" height="{height}" fill="{fill}"/>"#
        );
    }

    /// A line through `points` in `color`, each point marked by a dot (hollow where
    /// `hollow` says so).
    pub fn series(&mut self, points: &[(f64, f64, bool)], color: &str) {
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y, _)| format!("{},{}", px(x), px(y)))
            .collect();
        let _ = writeln!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y, hollow) in points {
            let fill = if hollow { "white" } else { color };
            let (x, y) = (px(x), px(y));
            let _ = writeln!(
                self.out,
                r#"<circle cx="{x}" cy="{y}" r="4" fill="{fill}" stroke="{color}" stroke-width="2"/>"#
            );
        }
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        let _ = writeln!(self.out, "</svg>");
        self.out
    }
}

/// Maps values to pixels along one axis: linearly, or by their logarithm.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    log: bool,
}

impl Scale {
    /// `lo..hi` onto pixels `from..to` (either may be the larger: y axes grow upwards).
    pub fn linear(lo: f64, hi: f64, from: f64, to: f64) -> Self {
        Self {
            lo,
            hi,
            from,
            to,
            log: false,
        }
    }

    /// The same by base-10 logarithm (`lo` and `hi` above zero).
    pub fn log(lo: f64, hi: f64, from: f64, to: f64) -> Self {
        Self {
            lo: lo.max(f64::MIN_POSITIVE).log10(),
            hi: hi.max(f64::MIN_POSITIVE).log10(),
            from,
            to,
            log: true,
        }
    }

    /// The pixel of `v`, clamped to the axis.
    pub fn at(&self, v: f64) -> f64 {
        let v = if self.log {
            v.max(f64::MIN_POSITIVE).log10()
        } else {
            v
        };
        let span = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let t = ((v - self.lo) / span).clamp(0.0, 1.0);
        self.from + (self.to - self.from) * t
    }
}

/// A coordinate to a tenth of a pixel, without trailing zeros (`12`, `12.5`).
fn px(v: f64) -> String {
    let s = format!("{v:.1}");
    if let Some(whole) = s.strip_suffix(".0") {
        return whole.to_owned();
    }
    s
}

/// `text` with the characters XML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '&' => s.push_str("&amp;"),
            '"' => s.push_str("&quot;"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_ends_and_clamp() {
        let x = Scale::linear(0.0, 10.0, 100.0, 200.0);
        assert_eq!(x.at(0.0), 100.0);
        assert_eq!(x.at(5.0), 150.0);
        assert_eq!(x.at(20.0), 200.0);
        let y = Scale::log(1.0, 1000.0, 300.0, 0.0);
        assert_eq!(y.at(1.0), 300.0);
        assert!((y.at(10.0) - 200.0).abs() < 1e-9);
        assert_eq!(y.at(0.0), 300.0);
    }

    #[test]
    fn text_is_escaped_and_the_document_closed() {
        let mut s = Svg::new(10.0, 10.0);
        s.text(1.0, 2.0, "", "a < b & \"c\"");
        let doc = s.finish();
        assert!(doc.contains("a &lt; b &amp; &quot;c&quot;"));
        assert!(doc.starts_with("<svg ") && doc.ends_with("</svg>\n"));
        assert_eq!(px(12.0), "12");
        assert_eq!(px(107.34039), "107.3");
    }
}
