package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The SBOM is SPDX 2.3 JSON written from the binary's own build info
// (debug/buildinfo: the main module, every linked module with its version
// and go.sum hash, the Go release and the build settings). That is all a Go
// binary's dependency list is, so a few structs serve better than an SBOM
// tool or library: nothing new to install, and what is listed is exactly
// what was linked.

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	DocumentDescribes []string           `json:"documentDescribes"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                string            `json:"SPDXID"`
	Name                  string            `json:"name"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	PackageFileName       string            `json:"packageFileName,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	LicenseConcluded      string            `json:"licenseConcluded"`
	LicenseDeclared       string            `json:"licenseDeclared"`
	CopyrightText         string            `json:"copyrightText"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	Comment               string            `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

const noAssertion = "NOASSERTION"

// purl is a Package URL of the golang type; '+' (as in +incompatible) must
// be escaped in a purl version.
func purl(path, version string) string {
	if version == "" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + strings.ReplaceAll(version, "+", "%2B")
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// writeSBOM writes the SPDX document of the binary at bin to out.
func writeSBOM(bin, version, out string) error {
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	meta, bi, err := readBuildMeta(bin)
	if err != nil {
		return err
	}
	doc := sbomDocument(filepath.Base(bin), b, version, meta, bi)
	j, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(j, '\n'), 0o644)
}

// sbomDocument describes the binary named name with contents bin. The
// namespace is made from the binary's digest and the creation time is the
// commit time, so the document is as reproducible as the binary.
func sbomDocument(name string, bin []byte, version string, meta buildMeta, bi *buildinfo.BuildInfo) spdxDocument {
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	var settings []string
	for _, s := range bi.Settings {
		settings = append(settings, s.Key+"="+s.Value)
	}
	const mainID = "SPDXRef-Package-vaultsink"
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://" + meta.Module + "/spdx/" + name + "-" + digest,
		CreationInfo: spdxCreationInfo{
			Created:  meta.Time.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: vaultsink-tools-release"},
		},
		DocumentDescribes: []string{mainID},
		Packages: []spdxPackage{{
			SPDXID:                mainID,
			Name:                  "vaultsink",
			VersionInfo:           version,
			PackageFileName:       name,
			DownloadLocation:      "git+https://" + meta.Module + "@" + meta.Revision,
			Checksums:             []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: digest}},
			LicenseConcluded:      "Apache-2.0",
			LicenseDeclared:       "Apache-2.0",
			CopyrightText:         noAssertion,
			PrimaryPackagePurpose: "APPLICATION",
			ExternalRefs:          []spdxExternalRef{{"PACKAGE-MANAGER", "purl", purl(bi.Main.Path, bi.Main.Version)}},
			Comment:               "Built by " + bi.GoVersion + " with " + strings.Join(settings, " "),
		}, {
			SPDXID:                "SPDXRef-Package-go-stdlib",
			Name:                  "stdlib",
			VersionInfo:           bi.GoVersion,
			DownloadLocation:      "https://go.dev/dl/",
			LicenseConcluded:      noAssertion,
			LicenseDeclared:       "BSD-3-Clause",
			CopyrightText:         noAssertion,
			PrimaryPackagePurpose: "LIBRARY",
			ExternalRefs:          []spdxExternalRef{{"PACKAGE-MANAGER", "purl", purl("stdlib", strings.TrimPrefix(bi.GoVersion, "go"))}},
		}},
		Relationships: []spdxRelationship{
			{"SPDXRef-DOCUMENT", "DESCRIBES", mainID},
			{mainID, "DEPENDS_ON", "SPDXRef-Package-go-stdlib"},
		},
	}
	used := map[string]bool{}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace // what was linked
		}
		base := "SPDXRef-Package-go-" + strings.Trim(spdxIDUnsafe.ReplaceAllString(d.Path+"-"+d.Version, "-"), "-")
		id := base
		for n := 2; used[id]; n++ { // two paths that differ only in / _ + ~
			id = fmt.Sprintf("%s-%d", base, n)
		}
		used[id] = true
		p := spdxPackage{
			SPDXID:                id,
			Name:                  d.Path,
			VersionInfo:           d.Version,
			DownloadLocation:      noAssertion,
			LicenseConcluded:      noAssertion,
			LicenseDeclared:       noAssertion,
			CopyrightText:         noAssertion,
			PrimaryPackagePurpose: "LIBRARY",
			ExternalRefs:          []spdxExternalRef{{"PACKAGE-MANAGER", "purl", purl(d.Path, d.Version)}},
		}
		if d.Sum != "" {
			p.Comment = "go.sum " + d.Sum
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{mainID, "DEPENDS_ON", id})
	}
	return doc
}
