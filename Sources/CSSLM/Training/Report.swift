// report.html: one self-contained page per run folder, readable without any tool. It reads what the
// run wrote (config.json, metrics.jsonl, result.json, retrieved.jsonl, model/labels.txt) and shows
// the loss curves of each stage and the dev-accuracy curve as hand-written inline SVG polylines,
// the test confusion matrix at the best dev epoch, a few retrieved sentences per class with their
// scores, and the config. Rank 0 writes it at the end of `Trainer.run()`; `csslm report RUN`
// rewrites it for an existing (or unfinished) run folder.
import Foundation

/// The parts of a run folder that the report shows, and the HTML made from them.
///
/// ```swift
/// let report = try RunReport(runDirectory: URL(fileURLWithPath: "runs/demo/csslm"))
/// try report.write()          // runs/demo/csslm/report.html
/// ```
public struct RunReport {
    public static let fileName = "report.html"
    /// Queries shown per class, and distinct retrieved sentences shown per query (best scores first).
    static let queriesPerClass = 3, sentencesPerQuery = 3

    /// One `"kind": "step"` line of metrics.jsonl: the total loss and its named parts.
    struct StepPoint {
        var stage: String
        var step: Int
        var values: [String: Double]
    }

    /// One `"kind": "eval"` line of metrics.jsonl.
    struct EvalPoint {
        var stage: String
        var split: String
        var epoch: Int
        var accuracy: Double
    }

    /// One line of retrieved.jsonl: a query, its class, and what it retrieved.
    struct RetrievedQuery {
        var query: String
        var label: String
        var sentences: [(text: String, score: Double)]
    }

    /// One line of a chart.
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    public let runDirectory: URL
    var configText: String
    var title: String
    var steps: [StepPoint] = []
    var evals: [EvalPoint] = []
    var result: RunResult?
    var labelNames: [String] = []
    var retrieved: [RetrievedQuery] = []

    /// Step-entry fields that are not loss values.
    static let stepMetaFields: Set<String> = ["kind", "stage", "step", "epoch", "lr", "grad_norm", "seconds", "masked_anchors"]

    /// Reads the run folder. config.json and metrics.jsonl must exist; result.json (an unfinished
    /// run has none), retrieved.jsonl and labels.txt are shown when present. A malformed file is an
    /// error naming it (and the line).
    public init(runDirectory: URL) throws {
        self.runDirectory = runDirectory
        let configURL = runDirectory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw CSSLMError("\(configURL.path): missing", hint: "pass a run folder written by `csslm train`")
        }
        let config = try TrainConfig.load(from: configURL)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        configText = String(decoding: try encoder.encode(config), as: UTF8.self)
        title = "\(config.method.rawValue) on \(URL(fileURLWithPath: config.data).lastPathComponent)"

        // Lines of steps that a resumed session redid are left out: one point per step, its final value.
        let metricsURL = runDirectory.appendingPathComponent(MetricsLog.fileName)
        for entry in try MetricsLog.read(metricsURL) {
            let (line, object) = (entry.line, entry.object)
            let kind = object["kind"] as? String, stage = object["stage"] as? String ?? ""
            if kind == "step" {
                guard let step = object["step"] as? Int, object["loss"] is NSNumber else {
                    throw DataError.malformed(file: metricsURL.path, line: line, reason: "a step entry needs 'step' and 'loss'")
                }
                var values: [String: Double] = [:]
                for (key, value) in object where !Self.stepMetaFields.contains(key) {
                    if let number = (value as? NSNumber)?.doubleValue { values[key] = number }
                }
                steps.append(StepPoint(stage: stage, step: step, values: values))
            } else if kind == "eval" {
                guard let split = object["split"] as? String, let epoch = object["epoch"] as? Int,
                      let accuracy = (object["accuracy"] as? NSNumber)?.doubleValue else {
                    throw DataError.malformed(file: metricsURL.path, line: line, reason: "an eval entry needs 'split', 'epoch' and 'accuracy'")
                }
                evals.append(EvalPoint(stage: stage, split: split, epoch: epoch, accuracy: accuracy))
            }
        }

        let resultURL = runDirectory.appendingPathComponent("result.json")
        if FileManager.default.fileExists(atPath: resultURL.path) {
            do { result = try JSONDecoder().decode(RunResult.self, from: Data(contentsOf: resultURL)) } catch {
                throw CSSLMError("\(resultURL.path): not a run result (\(error))")
            }
        }
        // Class names: the saved model's labels.txt, else the dataset's, else indices.
        for url in [runDirectory.appendingPathComponent("model/labels.txt"), URL(fileURLWithPath: config.data).appendingPathComponent("labels.txt")]
        where labelNames.isEmpty && FileManager.default.fileExists(atPath: url.path) {
            try TextLines.forEach(in: try TextLines.readBytes(url), file: url.path) { _, text in
                let name = TextLines.trimmed(text)
                if !name.isEmpty { labelNames.append(String(name)) }
            }
        }

        let retrievedURL = runDirectory.appendingPathComponent("retrieved.jsonl")
        if FileManager.default.fileExists(atPath: retrievedURL.path) {
            try TextLines.forEachJSONObject(in: retrievedURL) { line, object in
                guard let query = object["query"] as? String, let items = object["retrieved"] as? [[String: Any]] else {
                    throw DataError.malformed(file: retrievedURL.path, line: line, reason: "an entry needs 'query' and 'retrieved'")
                }
                let label = object["label_name"] as? String ?? (object["label"] as? Int).map { String($0) } ?? "?"
                var seen = Set<Int>()
                let sentences = items.compactMap { item -> (text: String, score: Double, doc: Int)? in
                    guard let text = item["text"] as? String, let score = (item["score"] as? NSNumber)?.doubleValue else { return nil }
                    return (text, score, item["doc"] as? Int ?? -1)
                }
                .sorted { $0.score > $1.score }
                .filter { $0.doc < 0 || seen.insert($0.doc).inserted }
                retrieved.append(RetrievedQuery(query: query, label: label, sentences: sentences.map { ($0.text, $0.score) }))
            }
        }
    }

    /// Writes report.html into the run folder (atomically) and returns its URL.
    @discardableResult
    public func write() throws -> URL {
        let url = runDirectory.appendingPathComponent(Self.fileName)
        try writeAtomically(Data(html.utf8), to: url)
        return url
    }

    /// Stages in the order the run went through them.
    var stages: [String] {
        var seen = Set<String>()
        return (steps.map(\.stage) + evals.map(\.stage)).filter { seen.insert($0).inserted }
    }

    /// The whole page.
    public var html: String {
        var body = "<h1>csslm run: \(escapeHTML(title))</h1>\n<p class=\"path\">\(escapeHTML(runDirectory.path))</p>\n"
        body += resultSection
        body += "<h2>Loss</h2>\n"
        for stage in stages {
            let points = steps.filter { $0.stage == stage }
            guard !points.isEmpty else { continue }
            // The total first, then its parts in name order.
            let names = ["loss"] + Set(points.flatMap(\.values.keys)).subtracting(["loss"]).sorted()
            let series = names.map { name in
                Series(name: name, points: points.enumerated().compactMap { i, p in p.values[name].map { (Double(i + 1), $0) } })
            }
            body += Self.lineChart(title: "stage \(stage): loss per step", xLabel: "step of the stage", yLabel: "loss", series: series)
        }
        let dev = stages.map { stage in
            Series(name: stage, points: evals.filter { $0.stage == stage && $0.split == "dev" }.map { (Double($0.epoch + 1), $0.accuracy) })
        }.filter { !$0.points.isEmpty }
        if !dev.isEmpty {
            body += "<h2>Dev accuracy</h2>\n"
            body += Self.lineChart(title: "dev accuracy per epoch", xLabel: "epoch", yLabel: "accuracy", series: dev)
        }
        body += confusionSection
        body += retrievedSection
        body += "<h2>Config</h2>\n<pre>\(escapeHTML(configText))</pre>\n"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>csslm: \(escapeHTML(title))</title>
            <style>
            body { font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #222; }
            table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right; }
            td.text { text-align: left; } .path { color: #666; font-size: 90%; } pre { background: #f4f4f4; padding: 0.8em; }
            svg text { font-size: 11px; font-family: sans-serif; }
            </style></head><body>
            \(body)</body></html>

            """
    }

    /// Best epoch, dev and test accuracy and macro-F1, or a note that the run has not finished.
    var resultSection: String {
        guard let r = result else { return "<p>No result.json: the run has not finished.</p>\n" }
        return "<h2>Result</h2>\n<table><tr><th></th><th>accuracy</th><th>macro-F1</th></tr>\n"
            + String(format: "<tr><th>dev</th><td>%.4f</td><td>%.4f</td></tr>\n", r.dev.accuracy, r.dev.macroF1)
            + String(format: "<tr><th>test</th><td>%.4f</td><td>%.4f</td></tr></table>\n", r.test.accuracy, r.test.macroF1)
            + "<p>Best dev epoch \(r.bestEpoch), \(r.steps) steps, "
            + String(format: "%.0f s", r.seconds) + ", sample seed \(r.sampleSeed).</p>\n"
    }

    /// The test confusion matrix at the best dev epoch: rows the true class, columns the prediction.
    var confusionSection: String {
        guard let confusion = result?.test.confusion, !confusion.isEmpty else { return "" }
        func name(_ c: Int) -> String { escapeHTML(c < labelNames.count ? labelNames[c] : "class \(c)") }
        var out = "<h2>Test confusion matrix (best dev epoch)</h2>\n<table>\n<tr><th>true \\ predicted</th>"
        out += confusion.indices.map { "<th>\(name($0))</th>" }.joined() + "</tr>\n"
        for (c, row) in confusion.enumerated() {
            out += "<tr><th>\(name(c))</th>" + row.map { "<td>\($0)</td>" }.joined() + "</tr>\n"
        }
        return out + "</table>\n"
    }

    /// A few queries per class of the last epoch, each with its best distinct retrieved sentences.
    var retrievedSection: String {
        guard !retrieved.isEmpty else { return "" }
        var out = "<h2>Retrieved sentences (last epoch)</h2>\n"
        var seen = Set<String>()
        let classes = retrieved.map(\.label).filter { seen.insert($0).inserted }
        for label in classes {
            out += "<h3>\(escapeHTML(label))</h3>\n<table>\n<tr><th>query / retrieved</th><th>score</th></tr>\n"
            var shown = Set<String>()
            for q in retrieved where q.label == label && shown.count < Self.queriesPerClass && shown.insert(q.query).inserted {
                out += "<tr><td class=\"text\"><b>\(escapeHTML(q.query))</b></td><td></td></tr>\n"
                for s in q.sentences.prefix(Self.sentencesPerQuery) {
                    out += "<tr><td class=\"text\">&nbsp;&nbsp;\(escapeHTML(s.text))</td><td>" + String(format: "%.4f", s.score) + "</td></tr>\n"
                }
            }
            out += "</table>\n"
        }
        return out
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    /// An SVG line chart: axes with 5 ticks each, one polyline per series (non-finite points
    /// left out), dots where a series is short, and a legend.
    static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series]) -> String {
        let width = 640.0, height = 300.0, left = 60.0, right = 130.0, top = 28.0, bottom = 42.0
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var (x0, x1) = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
        var (y0, y1) = (all.map(\.y).min() ?? 0, all.map(\.y).max() ?? 1)
        if x1 <= x0 { x0 -= 1; x1 += 1 }
        if y1 <= y0 { y0 -= 0.5; y1 += 0.5 } else { let pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad }
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<text x=\"\(f(left))\" y=\"16\" font-weight=\"bold\">\(escapeHTML(title))</text>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"#333\"/>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"#333\"/>\n"
        for i in 0...4 {
            let xv = x0 + (x1 - x0) * Double(i) / 4, yv = y0 + (y1 - y0) * Double(i) / 4
            svg += "<line x1=\"\(f(px(xv)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(xv)))\" y2=\"\(f(top + plotH + 4))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f(px(xv)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(String(format: "%.4g", xv))</text>\n"
            svg += "<line x1=\"\(f(left - 4))\" y1=\"\(f(py(yv)))\" x2=\"\(f(left))\" y2=\"\(f(py(yv)))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(yv) + 4))\" text-anchor=\"end\">\(String(format: "%.4g", yv))</text>\n"
        }
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">\(escapeHTML(xLabel))</text>\n"
        svg += "<text transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escapeHTML(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let color = palette[i % palette.count]
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\""
                + points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ") + "\"/>\n"
            if points.count <= 30 {
                svg += points.map { "<circle cx=\"\(f(px($0.x)))\" cy=\"\(f(py($0.y)))\" r=\"2.5\" fill=\"\(color)\"/>" }.joined() + "\n"
            }
            let ly = top + 14 * Double(i)
            svg += "<line x1=\"\(f(left + plotW + 10))\" y1=\"\(f(ly))\" x2=\"\(f(left + plotW + 26))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            svg += "<text x=\"\(f(left + plotW + 30))\" y=\"\(f(ly + 4))\">\(escapeHTML(s.name))</text>\n"
        }
        return svg + "</svg>\n"
    }
}

/// `text` with `& < > " '` replaced by their HTML entities, safe inside elements and attributes.
public func escapeHTML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}
