import FlyingFox
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// An attach role's blocking loop (trainer, server, simulator) as a swift-service-lifecycle
/// service: the loop runs on a thread of its own; graceful shutdown (SIGTERM, SIGINT, or
/// another service ending) asks it to stop at a clean point, where it checkpoints,
/// commits and returns.
public final class LoopService: Service, @unchecked Sendable {
    // @unchecked: `body` runs only on the loop's thread once `run` starts, and what it
    // touches is read by the caller only after `run` has returned.
    let body: (_ shouldStop: () -> Bool) throws -> Void
    let name: String
    private let stopRequested = Atomic<Bool>(false)
    let logger: Logger

    /// - Parameter body: the loop; it polls `shouldStop` between units of work.
    public init(name: String, logger: Logger, body: @escaping (_ shouldStop: () -> Bool) throws -> Void) {
        self.name = name
        self.logger = logger
        self.body = body
    }

    /// Whether a graceful shutdown stopped the loop (rather than its own end).
    public var stopped: Bool { stopRequested.load(ordering: .acquiring) }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread { [self] in
                    do {
                        try body { self.stopRequested.load(ordering: .acquiring) }
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "recstream-\(name)"
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            logger.notice("stopping at a clean point")
            stopRequested.store(true, ordering: .releasing)
        }
    }
}

/// `GET /metrics`: the registry in Prometheus' text format, from a small HTTP server
/// (FlyingFox). Stops with the service group.
public final class MetricsEndpoint: Service, Sendable {
    let server: HTTPServer
    let registry: PrometheusCollectorRegistry

    /// - Parameters:
    ///   - host: an IPv4 address to listen on ("0.0.0.0" for every interface).
    ///   - port: 0 picks a free one (see `port()`).
    public init(registry: PrometheusCollectorRegistry, host: String, port: UInt16) throws {
        self.registry = registry
        server = HTTPServer(address: try .inet(ip4: host, port: port), logger: .disabled)
    }

    /// The port it listens on, once it does.
    public func port() async throws -> UInt16? {
        try await server.waitUntilListening()
        guard case .ip4(_, let port) = await server.listeningAddress else { return nil }
        return port
    }

    public func run() async throws {
        let registry = self.registry
        await server.appendRoute("GET /metrics") { _ in
            HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                         body: Data(registry.emitToBuffer()))
        }
        // Cancelled on graceful shutdown: the server closes its socket and returns (by
        // throwing, which is then no error).
        do {
            try await cancelWhenGracefulShutdown { [server] in try await server.run() }
        } catch {
            if Task.isShuttingDownGracefully || Task.isCancelled || error is CancellationError { return }
            throw error
        }
    }
}
