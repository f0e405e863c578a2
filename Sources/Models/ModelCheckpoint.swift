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
        w.write(s.l2); w.write(s.initScale); w.write(s.seed)
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
