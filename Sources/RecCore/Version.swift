/// recstream's version, as `recstream --version` prints it and reports record it.
public let recstreamVersion = "0.1.0"

/// The version of report.json's layout: a reader refuses a report of another.
public let reportVersion: Int64 = 3
