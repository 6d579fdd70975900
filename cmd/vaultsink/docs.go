package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

//go:generate go run . docs --dir ../../docs/cli

// newDocsCmd is the hidden command that writes docs/cli from the command
// tree (a test fails when docs/cli differs from what it writes).
func newDocsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "docs --dir D",
		Short:  "Write the command reference as Markdown, a file per command",
		Long:   "docs writes the Markdown reference of every command into --dir, one file per command (docs/cli in the repository).",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError("docs: --dir is required")
			}
			return writeDocs(cmd.Root(), dir)
		},
		Example: "  go run ./cmd/vaultsink docs --dir docs/cli",
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write into (required)")
	return cmd
}

// writeDocs writes root's reference into dir, one file per command
// (vaultsink.md links the others).
func writeDocs(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true // no date: the files change only when the commands do
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	return nil
}
