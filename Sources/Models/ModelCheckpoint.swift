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
        guard dims.allSatisfy({ $0 > 0 && $0 < 1 << 24 }), d == .dare || dims[0] == dims[1] else {
            throw BinaryReadError("implausible model dimensions \(dims)", at: fieldsAt + 1)
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
        let step = Int(try r.read(UInt64.self, "step"))
        let itemsAt = r.offset
        let items = Int(try r.read(UInt64.self, "category feed"))
        guard items < 1 << 32 else { throw BinaryReadError("implausible item count \(items)", at: itemsAt) }
        r.rewind(to: itemsAt)
        var categories = [UInt32](repeating: 0, count: items)
        try categories.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in try r.readRaw(into: b.baseAddress!, expected: items, "category feed") }
        let model = RankingModel(s, items: 0, categories: 0)
        let tableCount = Int(try r.read(UInt32.self, "table count"))
        guard tableCount == model.tables.count else {
            throw BinaryReadError("expected \(model.tables.count) tables, found \(tableCount)", at: r.offset - 4)
        }
        for t in model.tables {
            let rowsAt = r.offset
            let rows = Int(try r.read(UInt64.self, "table rows"))
            guard rows < 1 << 32 else { throw BinaryReadError("implausible row count \(rows)", at: rowsAt) }
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
        for w in model.workers { w.sparse = model.tables.map { SparseGradient(rows: $0.rows, dim: $0.dim) } }
        return model
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
        let users = Int(try r.read(UInt64.self, "history users"))
        guard cap > 0, users < 1 << 32, users * cap < 1 << 40 else { throw BinaryReadError("implausible history store \(users) x \(cap)", at: at) }
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

    /// Applies what `writeChanges` wrote: rows are overwritten (tables grow to hold a row
    /// they lack yet, with the same initial rows the trainer's grew), the dense
    /// parameters replaced. Reads everything before changing anything, so bytes that do
    /// not read leave the model as it was. `checkOnly` reads and checks without applying.
    public func applyChanges(from r: inout BinaryReader, checkOnly: Bool = false) throws(BinaryReadError) {
        let start = r.offset
        // First pass: check the shape and bounds.
        _ = try r.read(UInt64.self, "step")
        let count = Int(try r.read(UInt32.self, "table count"))
        guard count == tables.count else { throw BinaryReadError("the update has \(count) tables, this model \(tables.count)", at: r.offset - 4) }
        for t in tables {
            let dim = Int(try r.read(UInt32.self, "row width"))
            guard dim == t.dim else { throw BinaryReadError("the update's rows have \(dim) values, this model's \(t.dim)", at: r.offset - 4) }
            let rows = Int(try r.read(UInt32.self, "changed rows"))
            for _ in 0..<rows {
                let rowAt = r.offset
                let row = try r.read(UInt32.self, "row index")
                guard row < 1 << 28 else { throw BinaryReadError("implausible row \(row)", at: rowAt) }
                try r.skip(t.dim * 4, "row values")
            }
        }
        let denseAt = r.offset
        let denseCount = Int(try r.read(UInt64.self, "dense parameters"))
        guard denseCount == layout.count else { throw BinaryReadError("the update has \(denseCount) dense parameters, this model \(layout.count)", at: denseAt) }
        try r.skip(denseCount * 4, "dense parameters")
        if checkOnly { return }
        // Second pass: apply.
        let end = r.offset
        r.rewind(to: start)
        step = Int(try r.read(UInt64.self, "step"))
        _ = try r.read(UInt32.self, "table count")
        for t in tables {
            _ = try r.read(UInt32.self, "row width")
            let rows = Int(try r.read(UInt32.self, "changed rows"))
            for _ in 0..<rows {
                let row = Int(try r.read(UInt32.self, "row index"))
                if row >= t.rows { t.grow(to: row + 1) }
                try r.readValues(into: t.row(row), count: t.dim, "row values")
            }
        }
        try dense.withUnsafeMutableBufferPointer { (b) throws(BinaryReadError) in
            try r.readRaw(into: b.baseAddress!, expected: layout.count, "dense parameters")
        }
        precondition(r.offset == end)
        for w in workers {
            for i in tables.indices { w.sparse[i].grow(to: tables[i].rows) }
        }
    }

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
