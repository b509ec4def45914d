import Foundation
import SurgeonEmit
import SurgeonFormats
import SurgeonModel

/// What `heal` and `distill` start from: a surgery output (STUDENT) with its manifest,
/// checked against it, and the model the manifest was made from (TEACHER), checked
/// against its per-tensor hashes.
struct SurgeryInputs {
    let teacher: Checkpoint
    let student: Checkpoint
    let manifest: SurgeryManifest
    let manifestPath: String
    /// For each student layer, the teacher layers it stands for.
    let provenance: [ClosedRange<Int>]

    init(teacher teacherPath: String, student studentPath: String, command: String, output: String) throws {
        teacher = try Checkpoint.open(teacherPath)
        try teacher.validate()
        student = try Checkpoint.open(studentPath)
        try student.validate()
        manifestPath = SurgeryManifest.location(of: studentPath)
        guard let data = FilePath.contents(manifestPath) else {
            throw InputError("\(studentPath): no surgery manifest (\(manifestPath)); \(command) takes an output of merge or prune")
        }
        manifest = try SurgeryManifest.decode(data, path: manifestPath)
        let problems = try manifest.mismatches(of: studentPath)
        guard problems.isEmpty else {
            let more = problems.count > 1 ? " and \(problems.count - 1) more" : ""
            throw InputError("\(studentPath): does not match \(manifestPath): \(problems[0])\(more) (see verify)")
        }
        provenance = try Self.provenance(manifest, student: student, manifestPath: manifestPath)
        try Self.checkTeacher(teacher, path: teacherPath, manifest: manifest, manifestPath: manifestPath)
        try Converter.refuseOverwritingInput(teacher.path, output: output)
        try Converter.refuseOverwritingInput(student.path, output: output)
    }

    /// The original range of every student layer, from the manifest, after checking that
    /// it describes this student.
    static func provenance(_ manifest: SurgeryManifest, student: Checkpoint, manifestPath: String) throws -> [ClosedRange<Int>] {
        let layers = student.config.numHiddenLayers
        guard manifest.output.layers == layers, manifest.layers.count == layers else {
            throw InputError("\(student.path): has \(layers) layers, its manifest \(manifestPath) describes \(manifest.output.layers)")
        }
        let ranges = manifest.layers.sorted { $0.output < $1.output }.map { $0.original }
        var next = 0
        for (i, r) in ranges.enumerated() {
            guard r.count == 2, r[0] >= next, r[1] >= r[0], r[1] < manifest.source.layers else {
                throw InputError("\(manifestPath): layer \(i) has no valid original range in 0…\(manifest.source.layers - 1)")
            }
            next = r[1] + 1
        }
        return ranges.map { $0[0]...$0[1] }
    }

    /// The teacher must be the manifest's source: same depth and the same bytes in every tensor.
    static func checkTeacher(_ teacher: Checkpoint, path: String, manifest: SurgeryManifest, manifestPath: String) throws {
        let hashes = try SurgeryManifest.hashes(of: try SurgeryManifest.tensorFiles(of: teacher.path))
        let differing = SurgeryManifest.mismatches(hashes, expected: manifest.source.tensors)
        guard teacher.config.numHiddenLayers == manifest.source.layers, differing.isEmpty else {
            throw InputError("\(path): not the model \(manifestPath) was made from (\(manifest.source.path)): "
                             + "\(differing.count) of its tensors differ from the manifest's source hashes")
        }
    }
}
