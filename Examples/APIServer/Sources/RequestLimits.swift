import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers at once, then closes the connection, the two requests that are refused for their
/// size before anything of them reaches the caller:
///
/// - a head whose Content-Length declares more body than the caller takes: `Forward`
///   answers it 413 from the head alone, without reading the body. Before, it read the
///   body first, so a client that declared 1,000,000 bytes and sent a few had no answer
///   until `RequestDeadline` closed the connection 5 s later. Its body is never read, so
///   nothing after it on the connection is taken as a request: the connection closes
///   once that answer is written (saying so in `Connection: close`).
/// - headers past the decoder's limit (80 KiB a field or in all): 431 Request Header
///   Fields Too Large, bare, as the HTTP layer's other refusals are. Before, Hummingbird
///   wrote a bare 400 and waited for the connection's idle timeout, while a client still
///   sending a 1 MiB header line was blocked in its write and then found the connection
///   reset: no answer at all.
///
/// Requests are answered in order on an HTTP/1 connection, and a client may send several
/// before reading (pipelining): the close waits for the answers to the requests before.
final class RequestLimits: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let maxBodyBytes: Int
    /// Request heads read and answers ended on this connection.
    private var requests = 0, answered = 0
    /// The number of the request whose answer closes the connection (its body unread).
    private var closeAfter: Int?
    /// Headers too large arrived: 431 once every request before them is answered.
    private var headersTooLarge = false
    /// The connection closes once its last answer is written: nothing more is answered.
    private var closing = false

    init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    /// Whether `fields` declare a body over `limit` bytes (`Forward` then reads none of it).
    static func declaresTooLarge(_ fields: HTTPFields, limit: Int) -> Bool {
        // The decoder has checked it is digits; past UInt64 it refused the request itself.
        guard let value = fields[.contentLength], let length = UInt64(value) else { return false }
        return length > UInt64(limit)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case let .head(request) = unwrapInboundIn(data) {
            requests += 1
            if closeAfter == nil, Self.declaresTooLarge(request.headerFields, limit: maxBodyBytes) { closeAfter = requests }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError, parse == .headerOverflow else {
            return context.fireErrorCaught(error)
        }
        // Not passed on: Hummingbird would answer it 400 and keep the connection open.
        guard !closing else { return }
        headersTooLarge = true
        if answered == requests { refuseHeaders(context) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let closing = closeAfter == answered + 1
        switch unwrapOutboundIn(data) {
        case var .head(response) where closing:
            response.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(response)), promise: promise)
        case .end:
            answered += 1
            if closing {
                closeOnceWritten(context, context.writeAndFlush(data), promise: promise)
            } else {
                context.write(data, promise: promise)
                if headersTooLarge && answered == requests { refuseHeaders(context) }
            }
        default:
            context.write(data, promise: promise)
        }
    }

    private func refuseHeaders(_ context: ChannelHandlerContext) {
        headersTooLarge = false
        let head = HTTPResponse(status: .requestHeaderFieldsTooLarge, headerFields: [.connection: "close", .contentLength: "0"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        closeOnceWritten(context, context.writeAndFlush(wrapOutboundOut(.end(nil))), promise: nil)
    }

    /// Closes the connection once `written` completes (an answer is never cut short by
    /// its own close), then completes `promise` as the write did.
    private func closeOnceWritten(_ context: ChannelHandlerContext, _ written: EventLoopFuture<Void>, promise: EventLoopPromise<Void>?) {
        closing = true
        let channel = context.channel
        written.whenComplete { result in
            channel.close(promise: nil)
            switch result {
            case .success: promise?.succeed()
            case let .failure(error): promise?.fail(error)
            }
        }
    }
}
