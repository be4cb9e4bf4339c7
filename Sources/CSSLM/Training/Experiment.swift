// The protocol of the paper's tables, as data: methods × datasets × few-shot samples, each a full
// training run, summarised as mean ± population standard deviation over the samples of test
// accuracy and macro-F1 at the best dev epoch. `csslm experiment` runs the grid; this file plans it,
// summarises finished runs and renders the Markdown table.
import Foundation

/// One method of an experiment: a training method plus the retriever variant that tells
/// `csslm` from `csslm-query` apart.
public struct ExperimentMethod: Equatable, Sendable, CustomStringConvertible {
    public var method: TrainingMethod
    public var retriever: RetrieverKind

    /// Parses `probe`, `finetune`, `scl`, `selftrain`, `selftrain-query`, `csslm` or `csslm-query`.
    public init(parsing name: String) throws {
        if name.hasSuffix("-query"), let m = TrainingMethod(rawValue: String(name.dropLast(6))), m.retrieves {
            self.init(method: m, retriever: .query)
        } else if let m = TrainingMethod(rawValue: name) {
            self.init(method: m, retriever: .faithful)
        } else {
            throw CSSLMError("unknown method '\(name)'",
                             hint: "use probe, finetune, scl, selftrain, selftrain-query, csslm or csslm-query")
        }
    }

    public init(method: TrainingMethod, retriever: RetrieverKind) {
        self.method = method
        self.retriever = method.retrieves ? retriever : .faithful
    }

    /// The name used in run folders and tables (what `RunResult.method` reports).
    public var description: String { method.retrieves && retriever == .query ? method.rawValue + "-query" : method.rawValue }

    /// Every method the table compares, in its order: the frozen-feature probe, fine-tuning, then
    /// the paper's methods.
    public static let all = ["probe", "finetune", "scl", "selftrain", "csslm", "csslm-query"]

    /// Methods of other tools whose results `scripts/` writes into an experiment folder in the
    /// same layout (`<dataset>/<name>/sample-<i>/result.json`); the table marks them as outside
    /// references.
    public static let outsideReferences = ["setfit"]
}

/// Mean and population standard deviation (divide by n, as the paper's ± over 5 samples).
public struct MeanStd: Equatable, Sendable {
    public var mean: Double
    public var std: Double
    public var count: Int

    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else { mean = .nan; std = .nan; return }
        let m = values.reduce(0, +) / Double(values.count)
        mean = m
        std = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)).squareRoot()
    }

    /// "56.6 ± 1.2" in percent points.
    public var percent: String { count == 0 ? "–" : String(format: "%.1f ± %.1f", mean * 100, std * 100) }
}

/// One dataset × method cell of the table.
public struct ExperimentCell: Sendable {
    public var dataset: String
    public var method: String
    public var results: [RunResult]

    public var testAccuracy: MeanStd { MeanStd(results.map(\.test.accuracy)) }
    public var testMacroF1: MeanStd { MeanStd(results.map(\.test.macroF1)) }
    public var devAccuracy: MeanStd { MeanStd(results.map(\.dev.accuracy)) }
    public var meanSeconds: Double { results.isEmpty ? 0 : results.map(\.seconds).reduce(0, +) / Double(results.count) }
}

public enum ExperimentTable {
    /// Groups results by dataset (in first-seen order) and method (in `methods` order).
    public static func cells(_ results: [RunResult], methods: [String]) -> [ExperimentCell] {
        results.map(\.dataset).uniqued().flatMap { d in
            methods.compactMap { m in
                let mine = results.filter { $0.dataset == d && $0.method == m }.sorted { $0.sampleSeed < $1.sampleSeed }
                return mine.isEmpty ? nil : ExperimentCell(dataset: d, method: m, results: mine)
            }
        }
    }

    /// The results table: one row per dataset × method; the best test accuracy per dataset in bold,
    /// each method's gain over `finetune` on the same samples, and paired t statistics against
    /// `finetune` and `probe` over the samples both have. Outside references are marked.
    public static func markdown(_ cells: [ExperimentCell]) -> String {
        var lines = ["| dataset | method | test acc (%) | test macro-F1 (%) | dev acc (%) | Δ acc vs finetune | t vs finetune | t vs probe "
                     + "| pseudo-label precision (%) | distinct / class | samples | s/run |",
                     "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for dataset in cells.map(\.dataset).uniqued() {
            let mine = cells.filter { $0.dataset == dataset }
            let best = mine.map(\.testAccuracy.mean).max() ?? .nan
            let base = mine.first { $0.method == TrainingMethod.finetune.rawValue }
            let probe = mine.first { $0.method == TrainingMethod.probe.rawValue }
            for cell in mine {
                let acc = cell.testAccuracy
                let accText = acc.mean == best && mine.count > 1 ? "**\(acc.percent)**" : acc.percent
                var delta = "–"
                if let base, cell.method != base.method {
                    delta = String(format: "%+.1f", (acc.mean - base.testAccuracy.mean) * 100)
                }
                func t(_ other: ExperimentCell?) -> String {
                    guard let other, other.method != cell.method, let value = pairedT(cell, other) else { return "–" }
                    return String(format: "%+.2f", value)
                }
                let graded = cell.results.compactMap(\.retrieval)
                let precision = MeanStd(graded.compactMap(\.precision))
                let distinct = graded.isEmpty ? "–" : String(format: "%.0f",
                    graded.map { Double($0.distinctPerClass.reduce(0, +)) / Double(max($0.distinctPerClass.count, 1)) }.reduce(0, +)
                        / Double(graded.count))
                let name = ExperimentMethod.outsideReferences.contains(cell.method) ? "\(cell.method) (outside reference)" : cell.method
                lines.append("| \(dataset) | \(name) | \(accText) | \(cell.testMacroF1.percent) | \(cell.devAccuracy.percent) | "
                             + "\(delta) | \(t(base)) | \(t(probe)) | \(graded.isEmpty ? "–" : precision.percent) | \(distinct) | "
                             + "\(cell.results.count) | \(Int(cell.meanSeconds.rounded())) |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Paired t statistic of test accuracy, `a` − `b`, over the sample seeds both cells have
    /// (mean difference / (sample std of the differences / √n)); nil below 2 pairs or when every
    /// difference is the same.
    public static func pairedT(_ a: ExperimentCell, _ b: ExperimentCell) -> Double? {
        let other = Dictionary(b.results.map { ($0.sampleSeed, $0.test.accuracy) }, uniquingKeysWith: { x, _ in x })
        let d = a.results.compactMap { r in other[r.sampleSeed].map { r.test.accuracy - $0 } }
        guard d.count >= 2 else { return nil }
        let mean = d.reduce(0, +) / Double(d.count)
        let variance = d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d.count - 1)
        guard variance > 0 else { return nil }
        return mean / (variance / Double(d.count)).squareRoot()
    }

    public static let beginMarker = "<!-- csslm experiment: begin -->"
    public static let endMarker = "<!-- csslm experiment: end -->"

    /// `document` with the text between the experiment markers replaced by `section` (markers
    /// kept), or with the marked section appended when the markers are absent.
    public static func replacingSection(in document: String, with section: String) -> String {
        let block = "\(beginMarker)\n\(section)\n\(endMarker)"
        if let begin = document.range(of: beginMarker), let end = document.range(of: endMarker, range: begin.upperBound..<document.endIndex) {
            return document.replacingCharacters(in: begin.lowerBound..<end.upperBound, with: block)
        }
        let separator = document.isEmpty || document.hasSuffix("\n\n") ? "" : (document.hasSuffix("\n") ? "\n" : "\n\n")
        return document + separator + block + "\n"
    }
}

extension Sequence where Element: Hashable {
    /// The elements in first-seen order, each once.
    public func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
