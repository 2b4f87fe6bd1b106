import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat
import RegistryProtocol
import RegistryText

/// Strict JSON in, JSON out.
enum JSONBodies {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// Decodes a capped, JSON-typed body. Oversize → 413 before the body is read past the cap;
    /// another content type → 415; syntax errors → 400 `malformed_json`; schema errors → the
    /// `WireError`'s 400.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int, emptyMeans: String? = nil) async throws -> T {
        if let type = request.headers[.contentType] {
            let lowered = type.lowercased()
            guard lowered == "application/json" || lowered.hasPrefix("application/json;") else { throw APIError.unsupportedMediaType }
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.bodyTooLarge(limit)
        }
        var buffer = try await collect(request, limit: limit)
        if buffer.readableBytes == 0, let emptyMeans { buffer = ByteBuffer(string: emptyMeans) }
        do {
            return try JSONDecoder().decode(T.self, from: buffer)
        } catch let error as WireError {
            throw error
        } catch DecodingError.dataCorrupted {
            throw APIError.malformedJSON
        } catch DecodingError.typeMismatch(_, let context) {
            throw WireError.wrongType(context.codingPath.isEmpty ? "body" : WireError.path(context.codingPath))
        } catch DecodingError.keyNotFound(let key, let context) {
            throw WireError.missingField(WireError.path(context.codingPath, key))
        } catch DecodingError.valueNotFound(_, let context) {
            throw WireError.missingField(WireError.path(context.codingPath))
        } catch {
            throw APIError.malformedJSON
        }
    }

    /// Refuses a body on routes that take none (beyond an empty one or `{}`).
    static func requireEmpty(_ request: Request, limit: Int) async throws {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.bodyTooLarge(limit)
        }
        let buffer = try await collect(request, limit: limit)
        let text = String(buffer: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.isEmpty || text == "{}" else {
            throw WireError.unknownField(in: "body", accepted: [])
        }
    }

    /// The whole body, up to `limit` bytes: 413 past it. A body that ends before it is complete
    /// (the connection closed, or the request's deadline passed and closed it) is 408
    /// `request_timeout`: an abandoned upload, not an oversized one, and not audited.
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        var request = request
        do { return try await request.collectBody(upTo: limit) } catch is NIOTooManyBytesError {
            throw APIError.bodyTooLarge(limit)
        } catch {
            throw APIError.requestAbandoned
        }
    }

    /// A JSON answer. `language` is given for answers with plain-words fields chosen by
    /// `Accept-Language`: it is named in `Content-Language` (RFC 9110 §8.5), and `Vary` says the
    /// answer depends on that header (RFC 9110 §12.5.5).
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, language: Language? = nil) throws -> Response {
        let body: ByteBuffer
        if let value = value as? any JSONWritable {
            body = ByteBuffer(bytes: value.jsonBytes())
        } else {
            body = ByteBuffer(bytes: try encoder.encode(value))
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        if let language {
            headers[.contentLanguage] = language.rawValue
            headers[.vary] = "Accept-Language"
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    static func errorResponse(_ error: APIError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        let data = (try? encoder.encode(error.body)) ?? Data("{\"error\":{\"code\":\"internal_error\",\"message\":\"\"}}".utf8)
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
