/// recstream's version, as `recstream --version` prints it and reports record it.
public let recstreamVersion = "0.1.0"
