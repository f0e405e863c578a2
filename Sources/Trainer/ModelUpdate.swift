import Models
import RecCore

// The trainer's side of model updates (the format and the receiver, `ModelReplica`, are
// in Models/ModelUpdate.swift).

extension ModelUpdate {
    /// The messages of one update: everything `trainer` changed since the last update,
    /// in parts of at most `maxPartBytes` of payload.
    public static func encode(_ trainer: ArmTrainer, header: Header, maxPartBytes: Int = 512 * 1024) -> [[UInt8]] {
        var payload = BinaryWriter()
        trainer.writeChanges(to: &payload)
        return seal(payload: payload.bytes, header: header, maxPartBytes: maxPartBytes)
    }
}

extension ArmTrainer {
    /// Starts recording what changes, for `ModelUpdate.encode`.
    public func tracksChanges() {
        statistics.tracksChanges = true
        sequence?.model.tracksChanges = true
        sequence?.logsHistoryAppends = true
    }

    /// The payload of an update (see `ModelUpdate`); forgets the changes it wrote.
    public func writeChanges(to w: inout BinaryWriter) {
        ModelUpdate.writePayload(statistics: &statistics, appends: sequence?.historyAppends ?? [], model: sequence?.model, to: &w)
        sequence?.historyAppends.removeAll(keepingCapacity: true)
    }

    /// The checksum of the state a server follows (`ModelReplica.stateChecksum`): a server
    /// that applied every update of this trainer has the same.
    public func stateChecksum(items: Int) -> UInt32 {
        ModelReplica.stateChecksum(statistics: statistics, histories: sequence?.histories, model: sequence?.model, items: items)
    }

}
