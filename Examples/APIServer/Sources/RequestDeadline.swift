import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request does not arrive whole within `limit` of its head, or
/// that takes none of what the server writes for `limit` (it stays unwritable).
///
/// The idle timeout covers only a connection with no request in flight: a client that
/// sent a head and then trickled its body a byte a second, or pipelined requests and
/// never read the answers, held its connection for good, and 16 of them held every slot
/// the server has, so `vmm ctl stop` never got through. The time the launcher takes to
/// act on a request (a snapshot may take long) is not limited: only the transfers.
final class RequestDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let limit: TimeAmount
    /// Requests come one at a time on an HTTP/1 connection.
    private var request: Scheduled<Void>?
    private var stalled: Scheduled<Void>?

    init(limit: TimeAmount) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: request = closing(context)
        case .end: request?.cancel(); request = nil
        case .body: break
        }
        context.fireChannelRead(data)
    }

    /// Unwritable: more waits to go out than NIO buffers, because the client reads nothing.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stalled?.cancel()
            stalled = nil
        } else if stalled == nil {
            stalled = closing(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancelAll() }

    private func closing(_ context: ChannelHandlerContext) -> Scheduled<Void> {
        let channel = context.channel
        return context.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
    }

    private func cancelAll() {
        request?.cancel()
        stalled?.cancel()
        (request, stalled) = (nil, nil)
    }
}
