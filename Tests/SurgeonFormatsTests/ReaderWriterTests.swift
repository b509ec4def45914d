import TestSupport
import XCTest
@testable import SurgeonFormats

final class ReaderWriterTests: XCTestCase {
    func testSafetensorsWriteThenRead() throws {
        let dir = try TestPaths.temporaryDirectory()
        let path = dir + "/t.safetensors"
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [UInt16] = [0x3C00, 0x4000]
        let layout = SafetensorsLayout(entries: [
            .init(name: "a \"quoted\"", dtype: .f32, shape: [2, 3]),
            .init(name: "b", dtype: .bf16, shape: [2]),
        ], metadata: [("format", "pt"), ("note", "ünïcode")])
        let out = try OutputFile(path: path)
        try out.write(layout.headerBytes())
        try a.withUnsafeBytes { try out.write($0) }
        try b.withUnsafeBytes { try out.write($0) }
        try out.commit()

        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.dataStart % 8, 0, "header padded so data is 8-byte aligned")
        XCTAssertEqual(file.metadata.map(\.value), ["pt", "ünïcode"])
        XCTAssertEqual(file.tensors.map(\.name), ["a \"quoted\"", "b"])
        XCTAssertEqual(file.tensors[0].shape, [2, 3])
        XCTAssertEqual(decodeF32(file.tensors[0]), a)
        XCTAssertEqual(file.tensors[1].dtype, .bf16)
        XCTAssertEqual(Array(file.tensors[1].bytes), b.withUnsafeBytes { Array($0) })
    }

    func testGGUFWriteThenReadEveryValueType() throws {
        let path = try TestPaths.temporaryDirectory() + "/t.gguf"
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("u8", .uint8(200)), ("i8", .int8(-100)), ("u16", .uint16(65535)), ("i16", .int16(-32768)),
            ("u32", .uint32(.max)), ("i32", .int32(.min)), ("f32", .float32(-1.5)), ("b", .bool(true)),
            ("s", .string("héllo ✓")), ("u64", .uint64(.max)), ("i64", .int64(.min)), ("f64", .float64(.pi)),
            ("arr", .array(.string, [.string("a"), .string("")])), ("empty", .array(.int32, [])),
            ("nested", .array(.array, [.array(.uint8, [.uint8(1)])])),
        ]
        let values: [Float] = (0..<64).map { Float($0) / 8 }
        let layout = GGUFLayout(metadata: metadata, tensors: [
            .init(name: "w", dtype: .f32, shape: [2, 32]),
            .init(name: "v", dtype: .f32, shape: [3]),
        ])
        let out = try OutputFile(path: path)
        try out.write(layout.headerBytes())
        try values.withUnsafeBytes { try out.write($0) }
        try out.writeZeros(layout.padding(before: 1))
        try [Float](repeating: 7, count: 3).withUnsafeBytes { try out.write($0) }
        try out.commit()

        let gguf = try GGUFFile(path: path)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.metadata.count, metadata.count)
        for ((k1, v1), (k2, v2)) in zip(gguf.metadata, metadata) {
            XCTAssertEqual(k1, k2)
            XCTAssertEqual(v1, v2, k1)
        }
        XCTAssertEqual(gguf.tensors.map(\.shape), [[2, 32], [3]])
        XCTAssertEqual(gguf.dataStart % 32, 0)
        XCTAssertEqual(gguf.tensors[1].dataRange.lowerBound % 32, 0)
        XCTAssertEqual(decodeF32(gguf.tensors[0]), values)
        XCTAssertEqual(decodeF32(gguf.tensors[1]), [7, 7, 7])
    }

    /// Every broken file in fixtures/malformed is refused with a message that names the
    /// file and contains the expected keyword (the CLI-level check is in tests/interop).
    func testMalformedFilesAreRejected() throws {
        let table = try String(contentsOfFile: TestPaths.malformed + "/EXPECTED.tsv", encoding: .utf8)
        var checked = 0
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: "\t").map(String.init)
            let (name, keyword) = (fields[0], fields[1])
            // Folders and GGUF files that are sound containers but broken models are the
            // model layer's to refuse (tests/interop/test_bad_input.py).
            guard !name.hasPrefix("hf-"), !name.hasPrefix("gguf-model-") else { continue }
            let path = TestPaths.malformed + "/" + name
            XCTAssertThrowsError(try TensorContainer(path: path), name) { error in
                guard let error = error as? FormatError else { return XCTFail("\(name): untyped error \(error)") }
                XCTAssertEqual(error.path, path)
                XCTAssertTrue(error.description.lowercased().contains(keyword), "\(name): '\(error)' lacks '\(keyword)'")
                XCTAssertFalse(error.description.contains("\n"))
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 30)
    }

    func testOutputFileAppearsOnlyOnCommit() throws {
        let dir = try TestPaths.temporaryDirectory()
        let path = dir + "/out.bin"
        do {
            let out = try OutputFile(path: path)
            try out.write([1, 2, 3])
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.temporaryPath))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "abandoned output leaves nothing")
        let out = try OutputFile(path: path)
        try out.write([1, 2, 3])
        try out.commit()
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data([1, 2, 3]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out.bin"])
    }

    /// One writer per output path at a time; the claim's lock file goes with the claim.
    func testSecondClaimOnOnePathIsRefused() throws {
        let dir = try TestPaths.temporaryDirectory()
        let path = dir + "/out.gguf"
        var first: OutputClaim? = try OutputClaim(path: path)
        XCTAssertThrowsError(try OutputClaim(path: path)) { error in
            XCTAssertTrue("\(error)".contains("another run"), "\(error)")
        }
        first = nil
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        let again = try OutputClaim(path: path)
        again.release()
        XCTAssertNil(first)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    /// An output some other program creates while ours is being written is not replaced.
    func testOutputCreatedMeanwhileIsLeftAlone() throws {
        let dir = try TestPaths.temporaryDirectory()
        let path = dir + "/out.bin"
        let out = try OutputFile(path: path)
        try out.write([1, 2, 3])
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([9])))
        XCTAssertThrowsError(try out.commit()) { error in
            XCTAssertTrue("\(error)".contains("another program"), "\(error)")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data([9]))
    }

    func testCopyFromMappingIsExact() throws {
        let dir = try TestPaths.temporaryDirectory()
        let source = dir + "/src.bin"
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        XCTAssertTrue(FileManager.default.createFile(atPath: source, contents: Data(bytes)))
        let mapped = try MappedFile(path: source)
        let out = try OutputFile(path: dir + "/dst.bin")
        try out.copy(from: mapped, range: 1000..<60_000)
        try out.commit()
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/dst.bin"), Data(bytes[1000..<60_000]))
    }

    func testXXH3KnownAnswer() {
        // XXH3-64 of the empty input and of "abc" (xxHash's published test values).
        XCTAssertEqual(XXH3Hasher.hex(XXH3Hasher.hash(UnsafeRawBufferPointer(start: nil, count: 0))), "2d06800538d394c2")
        let abc = Array("abc".utf8)
        XCTAssertEqual(abc.withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }, "78af5f94892f3950")
        var h = XXH3Hasher()
        abc.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<1])); h.update(UnsafeRawBufferPointer(rebasing: $0[1...])) }
        XCTAssertEqual(XXH3Hasher.hex(h.digest()), "78af5f94892f3950")
    }
}

final class FilePathTests: XCTestCase {
    func testDirectoryAndName() {
        XCTAssertEqual(FilePath.directory(of: "o"), ".")
        XCTAssertEqual(FilePath.directory(of: "a/b"), "a")
        XCTAssertEqual(FilePath.directory(of: "/x"), "/")
        XCTAssertEqual(FilePath.directory(of: "a/b/"), "a")
        XCTAssertEqual(FilePath.directory(of: "/"), "/")
        XCTAssertEqual(FilePath.name(of: "o"), "o")
        XCTAssertEqual(FilePath.name(of: "dir/model.gguf"), "model.gguf")
        XCTAssertEqual(FilePath.name(of: "dir/out/"), "out")
    }
}
