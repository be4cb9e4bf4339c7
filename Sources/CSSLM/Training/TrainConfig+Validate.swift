// Checking a run config: every numeric field against its range in NumericRanges (one table for
// every command), the relations between fields, and the folders it names; and, when it is read
// from a file, whole numbers for whole-number fields and relative paths resolved against the
// file's folder (README, "Configs").
import Foundation

extension TrainConfig {
    /// Every numeric field and its value; a test checks that this list and NumericRanges.fields
    /// name the same fields.
    var numericValues: [(field: String, value: Double)] {
        [("perClass", Double(perClass)), ("epochs", Double(epochs)), ("steps", Double(steps)), ("initSteps", Double(initSteps)),
         ("evalEvery", Double(evalEvery)), ("batchSize", Double(batchSize)), ("learningRate", Double(learningRate)),
         ("weightDecay", Double(effectiveWeightDecay)), ("warmupFraction", warmupFraction), ("maxGradNorm", Double(maxGradNorm)),
         ("maxLength", Double(maxLength)), ("evalBatchSize", Double(evalBatchSize)), ("devLimit", Double(devLimit)),
         ("testLimit", Double(testLimit)), ("initEpochs", Double(initEpochs)), ("poolSize", Double(poolSize)),
         ("minCorpusTokens", Double(minCorpusTokens)), ("corpusMaxLength", Double(corpusMaxLength)), ("topK", Double(topK)),
         ("negatives", Double(negatives)), ("refreshEvery", Double(refreshEvery)), ("prototypeWeight", Double(prototypeWeight)),
         ("temperature", Double(temperature)), ("checkpointEvery", Double(checkpointEvery)), ("keepCheckpoints", Double(keepCheckpoints))]
    }

    /// Checks ranges and relations; each problem names the field (and its flag).
    public func validate() throws {
        func bad(_ field: String, _ why: String, hint: String? = nil) -> CSSLMError {
            CSSLMError("run config: field '\(field)' \(why)", hint: hint)
        }
        for (field, value) in numericValues { try NumericRanges.check(field: field, value) }
        if headInit == .probe && classifier != .linear {
            throw bad("headInit", "'probe' needs the linear classifier head", hint: "add --classifier linear")
        }
        if method.retrieves {
            if poolSize < topK { throw bad("poolSize", "(\(poolSize)) must be at least topK (\(topK))") }
            if retrievalEncoder == .pretrained && (retriever != .query || method != .csslm && method != .selftrain) {
                throw bad("retrievalEncoder", "'pretrained' needs the query retriever (the faithful scorer's heads read trained features)",
                          hint: "add --retriever query")
            }
        }
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw bad("data", "'\(data)' is not a dataset folder (labels.txt, train/dev/test as .jsonl, .csv, .tsv or .json)")
        }
        if !FileManager.default.fileExists(atPath: model + "/config.json") {
            throw bad("model", "'\(model)' has no config.json", hint: "run scripts/setup.sh, or point --model at an HF model folder")
        }
        if method.retrieves && !FileManager.default.fileExists(atPath: corpusPath) {
            throw bad("corpus", "'\(corpusPath)' does not exist", hint: "run scripts/setup.sh, or pass --corpus FILE")
        }
    }

    /// A whole-number field given as a fraction (`"epochs": 1.5`) is named; JSONDecoder's own
    /// error for it names no field ("The given data was not valid JSON").
    static func checkNumbers(_ object: [String: Any], url: URL) throws {
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            // A boolean is an NSNumber too ("c"); its wrong type is the decoder's to name.
            guard let number = value as? NSNumber, !["c", "B"].contains(String(cString: number.objCType)) else { continue }
            let whole = NumericRanges.fields[key]?.integer ?? (key == "seed" || key == "sampleSeed")
            if whole && number.doubleValue != number.doubleValue.rounded() {
                throw CSSLMError("\(url.path): field '\(key)' must be a whole number, got \(number)")
            }
        }
    }

    /// Relative paths of a config file (model, data, output, corpus, poolCache) name files beside
    /// the config when they exist there, else (as before, and for the shipped configs/*.json,
    /// written from the repository root) in the current folder.
    func resolvingPaths(againstFolderOf url: URL) -> TrainConfig {
        let folder = url.deletingLastPathComponent().path
        func resolved(_ path: String) -> String {
            guard !path.isEmpty, !path.hasPrefix("/") else { return path }
            let beside = (folder as NSString).appendingPathComponent(path)
            return FileManager.default.fileExists(atPath: beside) ? beside : path
        }
        var c = self
        c.model = resolved(model); c.data = resolved(data); c.output = resolved(output)
        c.corpus = resolved(corpus); c.poolCache = resolved(poolCache)
        return c
    }
}
