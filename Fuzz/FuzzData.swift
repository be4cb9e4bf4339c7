// Fuzz targets for the dataset readers: JSONL, CSV/TSV, the reference JSON list, labels.txt and
// the unlabelled corpus.
import Foundation

/// Label lists the data targets read against, picked by the input's first byte: none (inferred),
/// names, and names that spell numbers (where a JSON number label is ambiguous).
private let labelLists: [[String]?] = [nil, ["neg", "pos"], ["0", "1", "2"], ["1", "2", "3", "4", "5"]]

/// Checks what every labelled reader promises, then the few-shot sample written as JSONL reads
/// back as the same examples.
private func checkLabeled(_ dataset: LabeledDataset, _ report: DataReadReport, labels: [String]?) {
    if let labels { check(dataset.labels == labels, "the label list changed") }
    check(dataset.labels.count <= InputLimits.maxLabelCount, "\(dataset.labels.count) labels passed the limit")
    check(report.records == dataset.count, "report counts \(report.records) records for \(dataset.count) examples")
    var previous = 0
    for e in dataset.examples {
        check(dataset.labels.indices.contains(e.label), "label index \(e.label) outside the list")
        check(e.line >= max(previous, 1), "line \(e.line) after line \(previous)")
        check(e.text.utf8.count <= InputLimits.maxLineBytes, "a text of \(e.text.utf8.count) bytes passed the line limit")
        previous = e.line
    }
    guard !dataset.labels.isEmpty, dataset.classCounts.allSatisfy({ $0 > 0 }) else { return }
    let sample = mustSucceed("few-shot sample") { try FewShotSampler.sample(dataset, perClass: 2, seed: 7) }
    let url = scratch.appendingPathComponent(FewShotSample.fileName)
    let (back, _) = mustSucceed("few-shot sample round trip") {
        try sample.write(to: url, source: dataset)
        return try LabeledDataset.readJSONL(at: url, labels: dataset.labels)
    }
    let drawn = sample.dataset(from: dataset)
    check(back.examples.map(\.text) == drawn.examples.map(\.text), "sample texts changed through JSONL")
    check(back.examples.map(\.label) == drawn.examples.map(\.label), "sample labels changed through JSONL")
}

private func labelList(_ input: [UInt8]) -> [String]? { labelLists[Int(input[0]) % labelLists.count] }

/// Byte 0 picks the label list; the rest is a JSONL file.
func fuzzJSONL(_ input: [UInt8]) throws {
    guard let first = input.first else { return }
    let labels = labelList([first])
    let (dataset, report) = try LabeledDataset.readJSONL(at: scratchFile("data.jsonl", input.dropFirst()), labels: labels)
    checkLabeled(dataset, report, labels: labels)
}

/// Byte 0 picks the label list and the delimiter (comma, tab, semicolon); the rest is the file,
/// whose header must name the columns `text` and `label`.
func fuzzCSV(_ input: [UInt8]) throws {
    guard let first = input.first else { return }
    let labels = labelList([first])
    let delimiter: Character = [",", "\t", ";"][Int(first / 4) % 3]
    let (dataset, report) = try LabeledDataset.readCSV(at: scratchFile("data.csv", input.dropFirst()),
                                                       delimiter: delimiter, labels: labels)
    checkLabeled(dataset, report, labels: labels)
}

/// Byte 0 picks the label list; the rest is a reference-format JSON list.
func fuzzJSONList(_ input: [UInt8]) throws {
    guard let first = input.first else { return }
    let labels = labelList([first])
    let (dataset, report) = try LabeledDataset.readReferenceJSON(at: scratchFile("data.json", input.dropFirst()),
                                                                 labels: labels)
    checkLabeled(dataset, report, labels: labels)
}

/// The bytes as labels.txt: distinct, non-empty, trimmed names, within the limit.
func fuzzLabels(_ input: [UInt8]) throws {
    let names = try LabeledDataset.readLabels(at: scratchFile("labels.txt", input))
    check(!names.isEmpty && names.count <= InputLimits.maxLabelCount, "\(names.count) labels")
    check(Set(names).count == names.count, "repeated label names")
    check(names.allSatisfy { !$0.isEmpty && String(TextLines.trimmed($0)) == $0 }, "an empty or untrimmed name")
}

/// Byte 0 picks the read chunk size (1...64 bytes) and the minimum token count; the rest is a
/// corpus file. Any chunk size gives the lines and counts of a whole-file read.
func fuzzCorpus(_ input: [UInt8]) throws {
    guard let first = input.first else { return }
    let url = scratchFile("corpus.txt", input.dropFirst())
    let minimum = Int(first >> 6)
    func read(chunkSize: Int) throws -> ([CorpusLine], CorpusReadStats) {
        let reader = try UnlabeledCorpusReader(url: url, minimumTokens: minimum, chunkSize: chunkSize)
        var lines: [CorpusLine] = []
        while let line = try reader.next() { lines.append(line) }
        return (lines, reader.stats)
    }
    let whole = try read(chunkSize: 1 << 20)
    let chunked = try read(chunkSize: 1 + Int(first & 63))
    check(whole.0 == chunked.0 && whole.1 == chunked.1, "chunked read differs: \(chunked.1) vs \(whole.1)")
    check(whole.0.allSatisfy { !$0.text.isEmpty && $0.text.utf8.count <= InputLimits.maxLineBytes }, "empty or long line kept")
}
