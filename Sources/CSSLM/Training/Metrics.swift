// Classification metrics: accuracy and macro-F1 (unweighted mean of per-class F1, as
// scikit-learn's f1_score(average="macro"); a class with no predictions and no examples scores 0).

public struct ClassificationMetrics: Codable, Equatable, Sendable {
    public var accuracy: Double
    public var macroF1: Double
    /// confusion[true][predicted]
    public var confusion: [[Int]]

    public init(predictions: [Int], labels: [Int], classes: Int) {
        precondition(predictions.count == labels.count)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        for (p, y) in zip(predictions, labels) { confusion[y][p] += 1 }
        let correct = (0..<classes).reduce(0) { $0 + confusion[$1][$1] }
        accuracy = labels.isEmpty ? 0 : Double(correct) / Double(labels.count)
        var f1Sum = 0.0
        for c in 0..<classes {
            let tp = Double(confusion[c][c])
            let predicted = Double((0..<classes).reduce(0) { $0 + confusion[$1][c] })
            let actual = Double(confusion[c].reduce(0, +))
            let denom = predicted + actual
            f1Sum += denom > 0 ? 2 * tp / denom : 0
        }
        macroF1 = classes > 0 ? f1Sum / Double(classes) : 0
        self.confusion = confusion
    }
}
