/// Rows of cells laid out in aligned columns, as recstream prints every table: the first
/// `leftAligned` columns flush left and the rest flush right, three spaces between
/// columns, a rule of dashes under the first row, trailing spaces trimmed.
///
/// `shown`, when given, is what each cell prints as (the same text with ANSI colours,
/// say); widths always come from `rows`, the text as it takes up columns.
public func alignedTable(_ rows: [[String]], leftAligned: Int = 1, shown: [[String]]? = nil) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max()! }
    var out = ""
    for (r, row) in rows.enumerated() {
        var line = ""
        for (c, cell) in row.enumerated() {
            let pad = String(repeating: " ", count: widths[c] - cell.count)
            let text = shown?[r][c] ?? cell
            if c > 0 { line += "   " }
            line += c < leftAligned ? text + pad : pad + text
        }
        while line.hasSuffix(" ") { line.removeLast() }
        out += line + "\n"
        if r == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "   ") + "\n" }
    }
    return out
}
