import RecCore

extension RankingModel {
    /// Writes the settings, every table with its Adam moments, the dense layers with
    /// theirs, the step and the category feed.
    public func write(to w: inout BinaryWriter) {
        let s = settings
        w.write(s.design.rawValue)
        w.write(UInt8(s.fields.rawValue))
        for v in [s.attentionDim, s.representationDim, s.topK, s.maxHistory, s.hidden1, s.hidden2] { w.write(UInt32(v)) }
        w.write(s.adam.learningRate); w.write(s.adam.beta1); w.write(s.adam.beta2); w.write(s.adam.epsilon)
        w.write(s.l2); w.write(s.initScale); w.write(s.seed); w.write(s.auxLossWeight); w.write(s.tableOptimizer.rawValue)
        w.write(UInt8(s.batchNorm ? 1 : 0))
        w.write(UInt64(step))
        categoryOf.withUnsafeBufferPointer { w.writeRaw($0) }
        w.write(UInt32(tables.count))
        for t in tables {
            w.write(UInt64(t.rows))
            for p in [t.values, t.m, t.v] { w.writeRaw(UnsafeBufferPointer(start: p, count: t.rows * t.dim)) }
        }
        for a in [dense, denseM, denseV] { a.withUnsafeBufferPointer { w.writeRaw($0) } }
    }

    /// Reads what `write(to:)` wrote.
    public static func read(from r: inout BinaryReader) throws(BinaryReadError) -> RankingModel {
        var s = RankingModelSettings()
        let at = r.offset
        let design = try r.readString("model design")
        guard let d = EmbeddingDesign(rawValue: design) else { throw BinaryReadError("unknown model design '\(design)'", at: at) }
        s.design = d
        let fieldsAt = r.offset
        guard let fields = Fields(rawValue: Int(try r.read(UInt8.self, "model fields"))) else { throw BinaryReadError("unknown field set", at: fieldsAt) }
        s.fields = fields
        let dims = try (0..<6).map { (_) throws(BinaryReadError) in Int(try r.read(UInt32.self, "model dimensions")) }
        // The scenario's own limits (widths up to 1,024, L up to 100,000, K at most L):
        // the model's buffers are sized from these before anything else is read.
        let limits = [1024, 1024, 100_000, 100_000, 4096, 4096]
        guard zip(dims, limits).allSatisfy({ $0 > 0 && $0 <= $1 }), dims[2] <= dims[3], d == .dare || dims[0] == dims[1] else {
            throw BinaryReadError("implausible model dimensions \(dims) (attention, representation, top K, max history, hidden 1, hidden 2)", at: fieldsAt + 1)
        }
        (s.attentionDim, s.representationDim, s.topK, s.maxHistory, s.hidden1, s.hidden2) = (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5])
        s.adam.learningRate = try r.readFloat("learning rate")
        s.adam.beta1 = try r.readFloat("beta1")
        s.adam.beta2 = try r.readFloat("beta2")
        s.adam.epsilon = try r.readFloat("epsilon")
        s.l2 = try r.readFloat("l2")
        s.initScale = try r.readFloat("init scale")
        s.seed = try r.read(UInt64.self, "seed")
        let auxAt = r.offset
        s.auxLossWeight = try r.readFloat("aux loss weight")
        guard s.auxLossWeight.isFinite && s.auxLossWeight >= 0 else { throw BinaryReadError("implausible aux loss weight \(s.auxLossWeight)", at: auxAt) }
        let optimizerAt = r.offset
        let optimizer = try r.readString("table optimizer")
        guard let o = TableOptimizer(rawValue: optimizer) else { throw BinaryReadError("unknown table optimizer '\(optimizer)'", at: optimizerAt) }
        s.tableOptimizer = o
        s.batchNorm = try r.read(UInt8.self, "batch norm flag") == 1
        let stepAt = r.offset
        let rawStep = try r.read(UInt64.self, "step")
        guard rawStep <= UInt64(Int.max) else { throw BinaryReadError("implausible step \(rawStep)", at: stepAt) }
        let step = Int(rawStep)
        let itemsAt = r.offset
        let items = try r.readCount("category feed", elementSize: 4)
        r.rewind(to: itemsAt)
        var categories = [UInt32](repeating: 0, count: items)
        try categories.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readRaw(into: b.baseAddress!, expected: items, "category feed") }
        let model = RankingModel(s, items: 0, categories: 0)
        // Three copies (values and both moments) of the dense layers must be there.
        guard model.layout.count <= r.remaining / 12 else {
            throw BinaryReadError("truncated: the model's \(model.layout.count) dense parameters are not all there", at: r.offset)
        }
        let tableCount = Int(try r.read(UInt32.self, "table count"))
        guard tableCount == model.tables.count else {
            throw BinaryReadError("expected \(model.tables.count) tables, found \(tableCount)", at: r.offset - 4)
        }
        for t in model.tables {
            let rows = try r.readCount("table rows", elementSize: 12 * t.dim)
            t.grow(to: rows)
            for p in [t.values, t.m, t.v] { try r.readRaw(into: p, expected: rows * t.dim, "table values") }
        }
        for i in 0..<3 {
            var a = [Float](repeating: 0, count: model.layout.count)
            try a.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readRaw(into: b.baseAddress!, expected: model.layout.count, "dense layers") }
            if i == 0 { model.dense = a } else if i == 1 { model.denseM = a } else { model.denseV = a }
        }
        model.categoryOf = categories
        model.step = step
        try model.checkRows(at: itemsAt)
        for w in model.workers { w.sparse = model.tables.map { SparseGradient(dim: $0.dim) } }
        return model
    }

    /// Checks that every row the model may read exists: each item of the category feed
    /// has its item row, each category its category row, each window position its time
    /// row. (Scoring reads rows through raw pointers, so a file must not be able to name
    /// a row the table lacks.)
    func checkRows(at offset: Int) throws(BinaryReadError) {
        guard tables[attention[0]].rows >= categoryOf.count, tables[representation[0]].rows >= categoryOf.count else {
            throw BinaryReadError("the item table has fewer rows than the \(categoryOf.count) items of the category feed", at: offset)
        }
        if fieldCount == 3 {
            let categories = min(tables[attention[1]].rows, tables[representation[1]].rows)
            if let bad = categoryOf.first(where: { Int($0) >= categories }) {
                throw BinaryReadError("category \(bad) in the category feed is outside the \(categories) rows of the category table", at: offset)
            }
            guard tables[attention[2]].rows == settings.maxHistory + 1, tables[representation[2]].rows == settings.maxHistory + 1 else {
                throw BinaryReadError("the time table does not have the \(settings.maxHistory + 1) rows of the window", at: offset)
            }
        }
    }

    /// Checks that every history entry names an item the model has (at `offset` in the
    /// file, for the error).
    public func checkHistories(_ histories: UserHistories, at offset: Int) throws(BinaryReadError) {
        for u in 0..<histories.userCount {
            if let bad = histories.history(of: UserID(u)).first(where: { Int($0.item) >= categoryOf.count }) {
                throw BinaryReadError("user \(u)'s history names item \(bad.item), outside the model's \(categoryOf.count) items", at: offset)
            }
        }
    }
}


extension UserHistories {
    public func write(to w: inout BinaryWriter) {
        w.write(UInt32(cap))
        w.write(UInt64(userCount))
        counts.withUnsafeBufferPointer { w.writeRaw($0) }
        w.writeRaw(UnsafeBufferPointer(start: storage, count: userCount * cap))
    }

    public static func read(from r: inout BinaryReader) throws(BinaryReadError) -> UserHistories {
        let at = r.offset
        let cap = Int(try r.read(UInt32.self, "history cap"))
        let users = try r.readCount("history users", elementSize: 4)
        // The store is allocated before its entries are read: they must all be there.
        guard cap > 0, cap <= 100_000, users.multipliedReportingOverflow(by: cap * 8).partialValue <= r.remaining,
              !users.multipliedReportingOverflow(by: cap * 8).overflow else {
            throw BinaryReadError("implausible history store \(users) x \(cap) with \(r.remaining) bytes left", at: at)
        }
        let store = UserHistories(users: users, cap: cap)
        try store.counts.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readRaw(into: b.baseAddress!, expected: users, "history counts") }
        guard store.counts.allSatisfy({ $0 >= 0 && Int($0) <= cap }) else { throw BinaryReadError("a history count exceeds the cap \(cap)", at: at + 12) }
        try r.readRaw(into: store.storage, expected: users * cap, "history entries")
        return store
    }
}

// MARK: Model updates: what changed, for servers that follow a trainer

extension RankingModel {
    /// Whether training steps record the embedding rows they change (see `writeChanges`).
    public var tracksChanges: Bool {
        get { tables.first?.tracksChanges ?? false }
        set { for t in tables { t.tracksChanges = newValue } }
    }

    /// Embedding rows changed since the last `writeChanges` (or since changes were tracked).
    public var changedRowCount: Int { tables.reduce(0) { $0 + $1.changedRows.count } }

    /// Writes what a server needs to follow this model since the last call: the step, each
    /// table's changed rows (a count, then row index and values, rows in the order first
    /// changed) and every dense parameter (they all change each step); then forgets the
    /// changes. Values only: a server needs no optimizer state.
    public func writeChanges(to w: inout BinaryWriter) {
        w.write(UInt64(step))
        w.write(UInt32(tables.count))
        for t in tables {
            w.write(UInt32(t.dim))
            w.write(UInt32(t.changedRows.count))
            for row in t.changedRows {
                w.write(UInt32(row))
                w.writeValues(UnsafeBufferPointer(start: t.row(Int(row)), count: t.dim))
            }
            t.clearChanges()
        }
        dense.withUnsafeBufferPointer { w.writeRaw($0) }
    }

    /// Applies what `writeChanges` wrote: rows are overwritten, the dense parameters
    /// replaced. Reads and checks everything before changing anything, so bytes that do
    /// not read leave the model as it was: the step must fit an Int, every row must be one
    /// the receiver's table has (the tables follow the catalog, as the trainer's do), and
    /// every value must be finite. `checkOnly` only checks.
    public func applyChanges(from r: inout BinaryReader, checkOnly: Bool = false) throws(BinaryReadError) {
        let start = r.offset
        // First pass: check the shape, the bounds and the values.
        let stepAt = r.offset
        let step = try r.read(UInt64.self, "step")
        guard step <= UInt64(Int.max) else { throw BinaryReadError("implausible step \(step)", at: stepAt) }
        let count = Int(try r.read(UInt32.self, "table count"))
        guard count == tables.count else { throw BinaryReadError("the update has \(count) tables, this model \(tables.count)", at: r.offset - 4) }
        for (index, t) in tables.enumerated() {
            let dim = Int(try r.read(UInt32.self, "row width"))
            guard dim == t.dim else { throw BinaryReadError("the update's rows have \(dim) values, this model's \(t.dim)", at: r.offset - 4) }
            let rows = try r.readCount32("changed row count", elementSize: 4 + 4 * t.dim)
            for _ in 0..<rows {
                let rowAt = r.offset
                let row = Int(try r.read(UInt32.self, "row index"))
                guard row < t.rows else { throw BinaryReadError("row \(row) of table \(index) is outside its \(t.rows) rows", at: rowAt) }
                try Self.checkFinite(&r, count: t.dim, "row \(row) of table \(index)")
            }
        }
        let denseAt = r.offset
        let denseCount = try r.readCount("dense parameter count", elementSize: 4)
        guard denseCount == layout.count else { throw BinaryReadError("the update has \(denseCount) dense parameters, this model \(layout.count)", at: denseAt) }
        try Self.checkFinite(&r, count: denseCount, "dense parameters")
        if checkOnly { return }
        // Second pass: apply.
        let end = r.offset
        r.rewind(to: start)
        self.step = Int(try r.read(UInt64.self, "step"))
        _ = try r.read(UInt32.self, "table count")
        for t in tables {
            _ = try r.read(UInt32.self, "row width")
            let rows = Int(try r.read(UInt32.self, "changed rows"))
            for _ in 0..<rows {
                let row = Int(try r.read(UInt32.self, "row index"))
                try r.readValues(into: t.row(row), count: t.dim, "row values")
            }
        }
        try dense.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in
            try r.readRaw(into: b.baseAddress!, expected: layout.count, "dense parameters")
        }
        precondition(r.offset == end)
    }

    /// Reads `count` floats, each of which must be finite.
    static func checkFinite(_ r: inout BinaryReader, count: Int, _ what: String) throws(BinaryReadError) {
        for i in 0..<count {
            let v = try r.readFloat(what)
            guard v.isFinite else { throw BinaryReadError("\(what): value \(i) is \(v)", at: r.offset - 4) }
        }
    }

    /// Values held: every table row and dense parameter (not the optimizer's moments).
    public var parameterCount: Int { tables.reduce(layout.count) { $0 + $1.rows * $1.dim } }

    /// A CRC-32 over every parameter value (tables, then dense layers): equal models have
    /// equal checksums, so two processes can compare models without shipping them.
    public func parameterChecksum() -> UInt32 {
        var w = BinaryWriter()
        w.write(UInt64(step))
        for t in tables { w.writeValues(UnsafeBufferPointer(start: t.values, count: t.rows * t.dim)) }
        dense.withUnsafeBufferPointer { w.writeValues($0) }
        return w.bytes.withUnsafeBytes { CRC32.checksum($0) }
    }
}
