package io.github.qcowloom.cli;

import java.awt.Color;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.function.ToIntFunction;
import org.knowm.xchart.ChartEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The bench report's charts, drawn by XChart off screen and encoded as PNG. */
final class BenchCharts {
    static final int WIDTH = 820;
    static final int HEIGHT = 420;

    static {
        // A command-line tool has no display: AWT must not look for one (set before any AWT class loads).
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    private BenchCharts() {
    }

    /**
     * Grouped bars: one group per category (queue depth), one bar per series; a null value is a bar not drawn
     * (a series not measured at that depth).
     */
    static byte[] bars(String title, String yTitle, List<String> categories, Map<String, List<Double>> series)
            throws IOException {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT).title(title)
                .xAxisTitle("queue depth").yAxisTitle(yTitle).build();
        style(chart);
        for (Map.Entry<String, List<Double>> s : series.entrySet()) {
            chart.addSeries(s.getKey(), categories, s.getValue());
        }
        return png(chart);
    }

    /**
     * Lines over the categories, on a logarithmic axis when every value is positive (latencies span decades from
     * depth 1 to 256). A series named "... p99" is dashed; {@code colour} gives each series its index in the
     * palette, so that a p50 and a p99 of one executor share the colour it has in the other charts.
     */
    static byte[] lines(String title, String yTitle, List<String> categories, Map<String, List<Double>> series,
            ToIntFunction<String> colour) throws IOException {
        boolean positive = series.values().stream().flatMap(List::stream).allMatch(v -> v == null || v > 0);
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT).title(title)
                .xAxisTitle("queue depth").yAxisTitle(yTitle + (positive ? ", log scale" : "")).build();
        style(chart);
        chart.getStyler().setYAxisLogarithmic(positive);
        chart.getStyler().setOverlapped(true); // points of every series at the category's centre, not side by side
        chart.getStyler().setDefaultSeriesRenderStyle(CategorySeries.CategorySeriesRenderStyle.Line);
        Color[] palette = chart.getStyler().getSeriesColors();
        for (Map.Entry<String, List<Double>> s : series.entrySet()) {
            CategorySeries line = chart.addSeries(s.getKey(), categories, s.getValue());
            Color c = palette[Math.floorMod(colour.applyAsInt(s.getKey()), palette.length)];
            line.setLineColor(c);
            line.setMarkerColor(c);
            line.setLineStyle(s.getKey().endsWith(" p99") ? SeriesLines.DASH_DASH : SeriesLines.SOLID);
            line.setMarker(s.getKey().endsWith(" p99") ? SeriesMarkers.DIAMOND : SeriesMarkers.CIRCLE);
        }
        return png(chart);
    }

    private static void style(CategoryChart chart) {
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
        chart.getStyler().setYAxisDecimalPattern("#,##0.#");
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
    }

    private static byte[] png(CategoryChart chart) throws IOException {
        return ChartEncoder.getBytes(chart, "png");
    }
}
