/// A simulated (or attached) user. Dense from 0, so per-user state lives in arrays.
public typealias UserID = UInt32
/// A catalog item. Dense from 0; new items take the next ids.
public typealias ItemID = UInt32
/// One step of simulated time.
public typealias Tick = UInt32
